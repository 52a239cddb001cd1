"""Faster R-CNN and Mask R-CNN with a ResNet-FPN backbone, as Detectron2's model zoo defines them.

Parameter names are Detectron2's, so its `.pkl` checkpoints load after a plain rename-free
conversion (`convert_detectron2`). Inference only: frozen batch norm, no losses. The pieces, in
the order an image meets them:

    preprocess   PIL-bilinear resize (short side 800, long side <= 1333), RGB->BGR, minus mean,
                 zero-pad to a multiple of 32
    ResNet       stem + res2..res5 bottlenecks (stride in the first 1x1 conv, frozen BN)
    FPN          1x1 laterals + nearest x2 top-down sums + 3x3 outputs -> p2..p5, p6 = maxpool(p5)
    RPN          3x3 conv + ReLU, 3 anchors (ratios 0.5, 1, 2) per location and level;
                 per level top 1000, decode, clip, drop empty, NMS 0.7 over levels, best 1000
    box head     RoIAlign 7x7 (aligned) on the box's FPN level, fc1, fc2, 81-way softmax
                 (background last), class-specific deltas with weights (10, 10, 5, 5);
                 score > 0.05, NMS 0.5 per class, best 100
    mask head    RoIAlign 14x14, 4 x (3x3 conv + ReLU), 2x2 deconv + ReLU, 1x1 -> 80 masks,
                 sigmoid of the predicted class, pasted into the original image at >= 0.5

Sources: detectron2 modeling/backbone/{resnet,fpn}.py, proposal_generator/{rpn,proposal_utils}.py,
anchor_generator.py, box_regression.py, poolers.py, roi_heads/{roi_heads,box_head,fast_rcnn,
mask_head}.py, postprocessing.py, layers/mask_ops.py, data/transforms/transform.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lrp.models import ops

PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


# --------------------------------------------------------------------------------------------
# Backbone: ResNet with frozen batch norm, then FPN


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics (all four are buffers, as in Detectron2)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels) - eps)

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.to(x.dtype)[None, :, None, None] + shift.to(x.dtype)[None, :, None, None]


class ConvNorm(nn.Conv2d):
    """A bias-free conv followed by frozen BN, named `<conv>.weight` and `<conv>.norm.*`."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.norm = FrozenBatchNorm2d(cout)

    def forward(self, x):
        return self.norm(super().forward(x))


class BasicStem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvNorm(3, 64, 7, stride=2, padding=3)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    def __init__(self, cin, bottleneck, cout, stride):
        super().__init__()
        # Created before conv1 so that the state dict order matches Detectron2's.
        self.shortcut = ConvNorm(cin, cout, 1, stride=stride) if cin != cout else None
        # Detectron2's MSRA-style models put the stride in the first 1x1 conv.
        self.conv1 = ConvNorm(cin, bottleneck, 1, stride=stride)
        self.conv2 = ConvNorm(bottleneck, bottleneck, 3, padding=1)
        self.conv3 = ConvNorm(bottleneck, cout, 1)

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    def __init__(self, depth: int = 101):
        super().__init__()
        self.stem = BasicStem()
        cin, bottleneck, cout = 64, 64, 256
        for stage, count in zip(range(2, 6), BLOCKS[depth]):
            blocks = [BottleneckBlock(cin if i == 0 else cout, bottleneck, cout, (1 if stage == 2 else 2) if i == 0 else 1) for i in range(count)]
            self.add_module(f"res{stage}", nn.Sequential(*blocks))
            cin, bottleneck, cout = cout, bottleneck * 2, cout * 2

    def forward(self, x):
        feats = {}
        x = self.stem(x)
        for stage in range(2, 6):
            x = getattr(self, f"res{stage}")(x)
            feats[f"res{stage}"] = x
        return feats


class FPN(nn.Module):
    """Returns [p2, p3, p4, p5, p6] at strides 4..64."""

    def __init__(self, depth: int = 101, channels: int = 256):
        super().__init__()
        self.bottom_up = ResNet(depth)
        for stage, cin in zip(range(2, 6), (256, 512, 1024, 2048)):
            self.add_module(f"fpn_lateral{stage}", nn.Conv2d(cin, channels, 1))
            self.add_module(f"fpn_output{stage}", nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        feats = self.bottom_up(x)
        prev = self.fpn_lateral5(feats["res5"])
        outs = [self.fpn_output5(prev)]
        for stage in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{stage}")(feats[f"res{stage}"]) + top_down
            outs.insert(0, getattr(self, f"fpn_output{stage}")(prev))
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2, padding=0))
        return outs


# --------------------------------------------------------------------------------------------
# Region proposal network


STRIDES = (4, 8, 16, 32, 64)
ANCHOR_SIZES = (32, 64, 128, 256, 512)
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def cell_anchors(size: float, ratios=ASPECT_RATIOS) -> torch.Tensor:
    rows = []
    for r in ratios:
        w = math.sqrt(size * size / r)
        h = r * w
        rows.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(rows, dtype=torch.float32)


def grid_anchors(height: int, width: int, stride: int, size: float, device) -> torch.Tensor:
    """All anchors of one level, location-major then anchor (Detectron2's order), offset 0."""
    shift_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=device)
    shift_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=device)
    sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = torch.stack((sx.reshape(-1), sy.reshape(-1), sx.reshape(-1), sy.reshape(-1)), dim=1)
    return (shifts[:, None, :] + cell_anchors(size).to(device)[None, :, :]).reshape(-1, 4)


class RPNHead(nn.Module):
    def __init__(self, channels: int = 256, num_anchors: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness_logits = nn.Conv2d(channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, 1)

    def forward(self, features):
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x))
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


class RPN(nn.Module):
    def __init__(self, pre_nms_topk: int = 1000, post_nms_topk: int = 1000, nms_thresh: float = 0.7):
        super().__init__()
        self.rpn_head = RPNHead()
        self.pre_nms_topk, self.post_nms_topk, self.nms_thresh = pre_nms_topk, post_nms_topk, nms_thresh

    def forward(self, features, image_sizes):
        logits, deltas = self.rpn_head(features)
        n = features[0].shape[0]
        boxes_per_level, scores_per_level, level_ids = [], [], []
        for level, (x, lg, dl) in enumerate(zip(features, logits, deltas)):
            h, w = x.shape[-2:]
            anchors = grid_anchors(h, w, STRIDES[level], ANCHOR_SIZES[level], x.device)
            lg = lg.permute(0, 2, 3, 1).reshape(n, -1).float()  # N x (H*W*A)
            dl = dl.view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4).float()
            k = min(self.pre_nms_topk, lg.shape[1])
            top_scores, top_idx = lg.topk(k, dim=1)
            picked = dl[torch.arange(n, device=x.device)[:, None], top_idx]  # N x k x 4
            boxes = ops.apply_deltas(picked.reshape(-1, 4), anchors[top_idx.reshape(-1)]).view(n, k, 4)
            boxes_per_level.append(boxes)
            scores_per_level.append(top_scores)
            level_ids.append(torch.full((k,), level, dtype=torch.long, device=x.device))
        boxes_all = torch.cat(boxes_per_level, 1)
        scores_all = torch.cat(scores_per_level, 1)
        levels = torch.cat(level_ids)
        proposals = []
        for i, (h, w) in enumerate(image_sizes):
            boxes, scores, lv = boxes_all[i], scores_all[i], levels
            finite = torch.isfinite(boxes).all(1) & torch.isfinite(scores)
            boxes, scores, lv = boxes[finite], scores[finite], lv[finite]
            boxes = ops.clip_boxes(boxes, h, w)
            keep = ops.nonempty(boxes)
            boxes, scores, lv = boxes[keep], scores[keep], lv[keep]
            keep = ops.batched_nms(boxes, scores, lv, self.nms_thresh)[: self.post_nms_topk]
            proposals.append(boxes[keep])
        return proposals


# --------------------------------------------------------------------------------------------
# RoI heads


def assign_levels(boxes: torch.Tensor, min_level=2, max_level=5, canonical_size=224.0, canonical_level=4) -> torch.Tensor:
    """FPN level of each box (Detectron2's `assign_boxes_to_levels`), as 0-based index from min_level."""
    sizes = torch.sqrt(ops.box_area(boxes))
    level = torch.floor(canonical_level + torch.log2(sizes / canonical_size + 1e-8))
    return level.clamp(min=min_level, max=max_level).long() - min_level


def multilevel_roi_align(features, boxes_per_image, output_size: int) -> torch.Tensor:
    """ROIAlignV2 of every box on its level (one call per level, not per box): R x C x S x S."""
    rois = torch.cat(
        [torch.cat((torch.full((len(b), 1), i, dtype=torch.float32, device=b.device), b.float()), 1) for i, b in enumerate(boxes_per_image)]
    )
    levels = assign_levels(rois[:, 1:])
    out = features[0].new_zeros((len(rois), features[0].shape[1], output_size, output_size))
    for level in range(4):
        idx = (levels == level).nonzero().squeeze(1)
        if len(idx):
            out[idx] = ops.roi_align(features[level], rois[idx], output_size, 1.0 / STRIDES[level], 0, aligned=True).to(out.dtype)
    return out


class FastRCNNConvFCHead(nn.Module):
    def __init__(self, channels=256, resolution=7, fc_dim=1024):
        super().__init__()
        self.fc1 = nn.Linear(channels * resolution * resolution, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)

    def forward(self, x):
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class FastRCNNOutputLayers(nn.Module):
    def __init__(self, fc_dim=1024, num_classes=80):
        super().__init__()
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(fc_dim, num_classes * 4)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class MaskRCNNConvUpsampleHead(nn.Module):
    def __init__(self, channels=256, num_classes=80, num_conv=4):
        super().__init__()
        for k in range(1, num_conv + 1):
            self.add_module(f"mask_fcn{k}", nn.Conv2d(channels, channels, 3, padding=1))
        self.num_conv = num_conv
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        for k in range(1, self.num_conv + 1):
            x = F.relu(getattr(self, f"mask_fcn{k}")(x))
        return self.predictor(F.relu(self.deconv(x)))


class StandardROIHeads(nn.Module):
    def __init__(self, num_classes=80, mask=False, score_thresh=0.05, nms_thresh=0.5, detections_per_image=100):
        super().__init__()
        self.box_head = FastRCNNConvFCHead()
        self.box_predictor = FastRCNNOutputLayers(num_classes=num_classes)
        self.mask_head = MaskRCNNConvUpsampleHead(num_classes=num_classes) if mask else None
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh, self.detections_per_image = score_thresh, nms_thresh, detections_per_image

    def forward(self, features, proposals, image_sizes):
        dtype = self.box_head.fc1.weight.dtype
        pooled = multilevel_roi_align(features[:4], proposals, 7).to(dtype)
        cls_logits, deltas = self.box_predictor(self.box_head(pooled))
        probs = F.softmax(cls_logits.float(), dim=-1)
        boxes_all = ops.apply_deltas(deltas.float(), torch.cat(proposals), weights=(10.0, 10.0, 5.0, 5.0))
        results, start = [], 0
        for props, (h, w) in zip(proposals, image_sizes):
            r = len(props)
            results.append(self._inference_single(boxes_all[start : start + r], probs[start : start + r], h, w))
            start += r
        if self.mask_head is not None:
            self._predict_masks(features, results)
        return results

    def _inference_single(self, boxes, scores, h, w):
        """Detectron2's `fast_rcnn_inference_single_image`."""
        valid = torch.isfinite(boxes).all(1) & torch.isfinite(scores).all(1)
        boxes, scores = boxes[valid], scores[valid]
        scores = scores[:, :-1]  # background is the last column
        boxes = ops.clip_boxes(boxes.reshape(-1, 4), h, w).view(-1, self.num_classes, 4)
        mask = scores > self.score_thresh
        inds = mask.nonzero()
        boxes, scores = boxes[mask], scores[mask]
        keep = ops.batched_nms(boxes, scores, inds[:, 1], self.nms_thresh)
        if self.detections_per_image >= 0:
            keep = keep[: self.detections_per_image]
        return {"boxes": boxes[keep], "scores": scores[keep], "classes": inds[keep, 1]}

    def _predict_masks(self, features, results):
        dtype = self.mask_head.predictor.weight.dtype
        boxes = [r["boxes"] for r in results]
        if sum(len(b) for b in boxes) == 0:
            for r in results:
                r["mask_probs"] = torch.zeros((0, 28, 28), device=features[0].device)
            return
        logits = self.mask_head(multilevel_roi_align(features[:4], boxes, 14).to(dtype)).float()
        classes = torch.cat([r["classes"] for r in results])
        probs = logits[torch.arange(len(classes), device=logits.device), classes].sigmoid()
        start = 0
        for r in results:
            r["mask_probs"] = probs[start : start + len(r["boxes"])]
            start += len(r["boxes"])


# --------------------------------------------------------------------------------------------
# The model


def resized_shape(h: int, w: int, short: int = 800, max_size: int = 1333) -> tuple[int, int]:
    """Detectron2's ResizeShortestEdge.get_output_shape."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    # At least one pixel: for extreme aspect ratios Detectron2 would round a side to 0 and fail.
    return max(1, int(newh + 0.5)), max(1, int(neww + 0.5))


class GeneralizedRCNN(nn.Module):
    size_divisibility = 32

    def __init__(self, depth: int = 101, mask: bool = False, num_classes: int = 80, min_size: int = 800, max_size: int = 1333):
        super().__init__()
        self.backbone = FPN(depth)
        self.proposal_generator = RPN()
        self.roi_heads = StandardROIHeads(num_classes=num_classes, mask=mask)
        self.min_size, self.max_size = min_size, max_size
        self.keep_classes: list[int] | None = None

    @property
    def has_masks(self) -> bool:
        return self.roi_heads.mask_head is not None

    def configure(self, score_thresh: float | None = None, detections_per_image: int | None = None, classes=None):
        """Test-time settings; `classes` (contiguous indices) filters after the top-k over all
        classes, as picking categories from Detectron2's output does, and saves pasting the
        masks of other classes."""
        if score_thresh is not None:
            self.roi_heads.score_thresh = score_thresh
        if detections_per_image is not None:
            self.roi_heads.detections_per_image = detections_per_image
        self.keep_classes = None if classes is None else sorted(classes)
        return self

    def preprocess(self, images: list[np.ndarray]):
        """RGB uint8 HxWx3 images -> padded BGR batch minus the mean, resized sizes."""
        from PIL import Image

        device, dtype = self.backbone.fpn_lateral2.weight.device, self.backbone.fpn_lateral2.weight.dtype
        mean = torch.tensor(PIXEL_MEAN_BGR, device=device).view(3, 1, 1)
        tensors, sizes = [], []
        for img in images:
            h, w = img.shape[:2]
            nh, nw = resized_shape(h, w, self.min_size, self.max_size)
            if (nh, nw) != (h, w):
                img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
            t = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).to(device).permute(2, 0, 1).float()
            tensors.append(t - mean)
            sizes.append((nh, nw))
        d = self.size_divisibility
        H = int(math.ceil(max(s[0] for s in sizes) / d) * d)
        W = int(math.ceil(max(s[1] for s in sizes) / d) * d)
        batch = tensors[0].new_zeros((len(tensors), 3, H, W))
        for i, t in enumerate(tensors):
            batch[i, :, : t.shape[1], : t.shape[2]] = t
        return batch.to(dtype), sizes

    def forward(self, batch: torch.Tensor, image_sizes: list[tuple[int, int]]):
        features = self.backbone(batch)
        proposals = self.proposal_generator(features, image_sizes)
        return self.roi_heads(features, proposals, image_sizes)

    @torch.no_grad()
    def detect(self, images: list[np.ndarray]) -> list[dict]:
        """Detections per image in its own pixel frame: boxes (x1,y1,x2,y2), scores, classes
        (contiguous 0..79), and for mask models boolean masks the size of the image."""
        batch, sizes = self.preprocess(images)
        outs = self.forward(batch, sizes)
        return [postprocess(o, s, img.shape[:2], self.keep_classes) for o, s, img in zip(outs, sizes, images)]


def postprocess(out: dict, input_size: tuple[int, int], output_size: tuple[int, int], classes=None) -> dict:
    """Detectron2's `detector_postprocess`: rescale to the original image, clip, drop empty, paste masks."""
    (ih, iw), (oh, ow) = input_size, output_size
    if classes is not None:
        wanted = torch.isin(out["classes"], torch.tensor(classes, device=out["classes"].device))
        out = {k: v[wanted] for k, v in out.items()}
    boxes = out["boxes"].clone()
    boxes[:, 0::2] *= ow / iw
    boxes[:, 1::2] *= oh / ih
    boxes = ops.clip_boxes(boxes, oh, ow)
    keep = ops.nonempty(boxes)
    res = {"boxes": boxes[keep], "scores": out["scores"][keep], "classes": out["classes"][keep]}
    if "mask_probs" in out:
        res["masks"] = ops.paste_masks(out["mask_probs"][keep], res["boxes"], oh, ow)
    return res


def build_rcnn(depth: int = 101, mask: bool = False) -> GeneralizedRCNN:
    return GeneralizedRCNN(depth=depth, mask=mask).eval()


# --------------------------------------------------------------------------------------------
# Converting Detectron2 checkpoints


def convert_detectron2_state(raw: dict) -> dict[str, torch.Tensor]:
    """Detectron2 names are ours already; drop buffers we recompute and fill the norm layout.

    Some checkpoints store frozen norms as weight/bias only: like Detectron2's
    FrozenBatchNorm2d on load, we then use running mean 0 and running variance 1.
    """
    state: dict[str, torch.Tensor] = {}
    for name, value in raw.items():
        if name in ("pixel_mean", "pixel_std") or "anchor_generator.cell_anchors" in name or name.endswith("num_batches_tracked"):
            continue
        state[name] = torch.as_tensor(np.asarray(value)).float().clone()
    for name in list(state):
        if name.endswith(".norm.weight"):
            prefix = name[: -len("weight")]
            channels = state[name].shape[0]
            if prefix + "running_mean" not in state:
                state[prefix + "running_mean"] = torch.zeros(channels)
            if prefix + "running_var" not in state:
                state[prefix + "running_var"] = torch.ones(channels)
    return state


def convert_detectron2(src: Path) -> dict[str, torch.Tensor]:
    from lrp.sources.checkpoints import read_detectron2_checkpoint

    return convert_detectron2_state(read_detectron2_checkpoint(src))
