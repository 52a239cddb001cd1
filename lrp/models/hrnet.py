"""HRNet for top-down pose estimation (Sun et al., CVPR 2019), in plain PyTorch.

Parameter names follow leoxiaobin/deep-high-resolution-net.pytorch `lib/models/pose_hrnet.py`
exactly, so an official checkpoint loads after dropping `num_batches_tracked` (see
`lrp.models.pose_zoo.convert_hrnet`). The module is for inference: its batch norms keep the
running statistics and the affine parameters but not the training counter, which is why the
official key manifest minus the `num_batches_tracked` entries is this module's `state_dict()`.

Layout: a stem (two stride-2 3x3 convs), layer1 (Bottlenecks, 256 channels), then stages 2-4
with 2, 3 and 4 parallel branches of widths C, 2C, 4C, 8C exchanging information in fuse layers;
the last module of stage 4 keeps only the highest-resolution branch, and a 1x1 conv gives one
heatmap per joint at 1/4 of the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm2d(nn.Module):
    """Inference batch norm: the official keys minus `num_batches_tracked` (eps 1e-5)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    """The official `nn.Sequential(Conv2d, BatchNorm2d[, ReLU])` (keys `.0.weight`, `.1.*`)."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all inputs resampled to it.

    Fuse j > i: 1x1 conv + BN + nearest upsampling by 2^(j-i). Fuse j < i: (i-j) stride-2 3x3
    convs, the intermediate ones keeping branch j's width with BN + ReLU, the last one mapping to
    branch i's width with BN only. Then ReLU of the sum.
    """

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)]) for c in channels
        )
        self.fuse_layers = None
        if self.num_branches > 1:
            outputs = self.num_branches if multi_scale_output else 1
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(self._fuse(channels, i, j) for j in range(self.num_branches)) for i in range(outputs)
            )
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _fuse(channels: list[int], i: int, j: int) -> nn.Module | None:
        if j == i:
            return None
        if j > i:
            return nn.Sequential(
                nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                BatchNorm2d(channels[i]),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        steps = [conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
        steps.append(conv_bn(channels[j], channels[i], 3, 2, relu=False))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, fuse in enumerate(self.fuse_layers):
            h, w = xs[i].shape[-2:]
            y = xs[0] if i == 0 else fuse[0](xs[0])
            for j in range(1, self.num_branches):
                # Upsampled maps are cut to the branch's size: the official code needs inputs
                # divisible by 32; for others (48x64) a coarse cell covers the rows and columns
                # it came from, top-left aligned like the stride-2 convs. A no-op otherwise.
                y = y + (xs[j] if i == j else fuse[j](xs[j])[..., :h, :w])
            fused.append(self.relu(y))
        return fused


class PoseHighResolutionNet(nn.Module):
    """HRNet-W`width` with a heatmap head (`num_joints` heatmaps at 1/4 of the input size).

    `stage_modules`, `stage_blocks` and `layer1_blocks` default to the official COCO configs
    (`w32_256x192_adam_lr1e-3.yaml` and friends); tests shrink them to run in milliseconds.
    Input: ImageNet-normalised RGB crops (N, 3, h, w); output: (N, num_joints, h/4, w/4).
    """

    def __init__(
        self,
        width: int = 32,
        num_joints: int = 17,
        stage_modules: tuple[int, int, int] = (1, 4, 3),
        stage_blocks: int = 4,
        layer1_blocks: int = 4,
        final_conv_kernel: int = 1,
        input_size: tuple[int, int] = (192, 256),
        with_head: bool = True,
    ):
        super().__init__()
        self.input_size = tuple(input_size)  # (w, h) the weights were trained at; any size runs
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), BatchNorm2d(256))
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, downsample=downsample), *[Bottleneck(256, 64) for _ in range(layer1_blocks - 1)]
        )

        previous = [256]
        for stage, modules in zip((2, 3, 4), stage_modules):
            channels = [width * 2**b for b in range(stage)]
            setattr(self, f"transition{stage - 1}", self._transition(previous, channels))
            last_single = stage == 4  # the last module of stage 4 outputs the top branch only
            setattr(
                self,
                f"stage{stage}",
                nn.Sequential(
                    *[
                        HighResolutionModule(channels, stage_blocks, multi_scale_output=not (last_single and m == modules - 1))
                        for m in range(modules)
                    ]
                ),
            )
            previous = channels
        self.width = width
        if with_head:  # without: a backbone for another head (MMPose `backbone.` of SimCC, SR heads)
            self.final_layer = nn.Conv2d(width, num_joints, final_conv_kernel, 1, 1 if final_conv_kernel == 3 else 0)

    @staticmethod
    def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, cout in enumerate(current):
            if i < len(previous):
                layers.append(None if cout == previous[i] else conv_bn(previous[i], cout, 3, 1, relu=True))
            else:
                # A new branch grows out of the lowest-resolution branch by stride-2 convs.
                cin = previous[-1]
                extra = i + 1 - len(previous)
                layers.append(
                    nn.Sequential(*[conv_bn(cin, cout if k == extra - 1 else cin, 3, 2, relu=True) for k in range(extra)])
                )
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The highest-resolution branch of stage 4: (N, width, h/4, w/4)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for stage in (2, 3, 4):
            transition = getattr(self, f"transition{stage - 1}")
            # As the official forward: a transition, where there is one, reads the last branch.
            xs = [ys[i] if t is None else t(ys[-1]) for i, t in enumerate(transition)]
            ys = getattr(self, f"stage{stage}")(xs)
        return ys[0]


class SimCCHead(nn.Module):
    """MMPose `SimCCHead` without deconvolutions (`deconv_out_channels=None`): a 1x1 conv to one
    map per joint, flattened, then two linear classifiers over `split_ratio` bins per input pixel
    of x and of y. Keys: `final_layer`, `mlp_head_x`, `mlp_head_y`."""

    def __init__(self, in_channels: int, num_joints: int, input_size: tuple[int, int], split_ratio: float = 2.0, stride: int = 4):
        super().__init__()
        w, h = input_size
        self.final_layer = nn.Conv2d(in_channels, num_joints, 1)
        flatten = (-(-h // stride)) * (-(-w // stride))
        self.mlp_head_x = nn.Linear(flatten, int(w * split_ratio))
        self.mlp_head_y = nn.Linear(flatten, int(h * split_ratio))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.flatten(self.final_layer(feats), 2)
        return self.mlp_head_x(x), self.mlp_head_y(x)


class SRHead(nn.Module):
    """SRPose's SR head (Wang et al. 2023, Fig. 3c): a keypoint encoder (1x1 conv, `embed`
    channels per joint), one large-kernel conv per joint (a grouped conv) giving `scale**2`
    low-resolution maps per joint, and a pixel shuffle that stitches them into one heatmap per
    joint at `scale` times the feature resolution (the input resolution for stride 4)."""

    def __init__(self, in_channels: int, num_joints: int, scale: int = 4, embed: int = 8, kernel: int = 7):
        super().__init__()
        self.keypoint_encoder = nn.Sequential(nn.Conv2d(in_channels, num_joints * embed, 1), BatchNorm2d(num_joints * embed), nn.ReLU(inplace=True))
        self.lkc = nn.Conv2d(num_joints * embed, num_joints * scale * scale, kernel, 1, kernel // 2, groups=num_joints)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.lkc(self.keypoint_encoder(feats)))


class HRNetWithHead(nn.Module):
    """An HRNet backbone (`backbone.`, official names) under another head (`head.`), the layout
    of MMPose checkpoints. `head` "simcc": outputs (x, y) classifications; "sr": heatmaps at the
    input resolution."""

    def __init__(self, head: str, width: int = 32, num_joints: int = 17, input_size: tuple[int, int] = (192, 256), split_ratio: float = 2.0, **backbone):
        super().__init__()
        self.input_size = tuple(input_size)
        self.backbone = PoseHighResolutionNet(width=width, num_joints=num_joints, input_size=input_size, with_head=False, **backbone)
        if head == "simcc":
            self.head = SimCCHead(width, num_joints, input_size, split_ratio)
        elif head == "sr":
            self.head = SRHead(width, num_joints)
        else:
            raise ValueError(f"unknown HRNet head {head!r}; expected simcc or sr")

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone.features(x))


def hrnet_w32(**kwargs) -> PoseHighResolutionNet:
    return PoseHighResolutionNet(width=32, **kwargs)


def hrnet_w48(**kwargs) -> PoseHighResolutionNet:
    return PoseHighResolutionNet(width=48, **kwargs)


def hrnet_w32_simcc(**kwargs) -> HRNetWithHead:
    return HRNetWithHead("simcc", width=32, **kwargs)


def hrnet_w32_srhead(**kwargs) -> HRNetWithHead:
    return HRNetWithHead("sr", width=32, **kwargs)
