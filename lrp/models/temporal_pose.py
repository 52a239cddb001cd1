"""A tiny temporal heatmap network: 2r+1 neighbouring crops fused early, as video pose models take them.

Top-down video pose the PoseWarper / DCPose way: for a person box of frame t, `lrp pose` cuts the
SAME crop (same centre, scale and affine) from every frame t-r .. t+r of the image's video
(clamped at the sequence ends, lrp.frames.frame_windows), ImageNet-normalises each RGB group and
stacks them on the channel axis, frame t-r first: (N, 3*(2r+1), h, w). The network returns the
K heatmaps of frame t at a quarter of the input, so every heatmap codec reads them as HRNet's.

The network is deliberately plain (early fusion: the first convolution is the only layer that
sees the frames apart, so which input slot is which frame is visible in its weights):

    conv 3x3 /2 (3T -> C) BN ReLU -> conv 3x3 /2 BN ReLU -> blocks x (conv 3x3 BN ReLU) -> conv 1x1 -> K

There are no trained weights: `python -m lrp.models.temporal_pose` writes seeded random ones, so
the registry entry proves the plumbing of frame windows in `lrp pose`, never quality.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

# HRNet's inference conv + BN (+ ReLU): the same keys and the same eps as the rest of the pose zoo.
from lrp.models.hrnet import conv_bn


class EarlyFusionPose(nn.Module):
    def __init__(self, frames: int = 5, num_joints: int = 17, width: int = 32, blocks: int = 2):
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd (2r+1), got {frames}")
        self.frames, self.num_joints = frames, num_joints
        # Two stride-2 convs, as HRNet's stem: heatmaps at input/4, what the codecs expect.
        self.stem = nn.Sequential(conv_bn(3 * frames, width, 3, 2, relu=True), conv_bn(width, width, 3, 2, relu=True))
        self.body = nn.Sequential(*[conv_bn(width, width, 3, 1, relu=True) for _ in range(blocks)])
        self.final_layer = nn.Conv2d(width, num_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A wrong stack (a 1-frame crop given to a 5-frame net) must fail loudly, not broadcast.
        if x.shape[1] != 3 * self.frames:
            raise ValueError(f"expected {self.frames} RGB crops stacked on channels ({3 * self.frames}), got {x.shape[1]} channels")
        return self.final_layer(self.body(self.stem(x)))


def temporal_pose(frames: int = 5, num_joints: int = 17, width: int = 32, blocks: int = 2, input_size=(192, 256)) -> EarlyFusionPose:
    """`input_size` (w, h) is the crop the registry entry runs at; the network is fully
    convolutional and does not need it (the entry keeps it where `lrp pose` and `lrp cost` read it)."""
    return EarlyFusionPose(frames, num_joints, width, blocks)


def random_state(spec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights with non-default BN statistics and non-zero biases everywhere, so a
    wrong stacking order, a missed normalisation or ignored BN buffers all change the poses."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = spec.build()
    state = net.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            noise = torch.randn(value.shape, generator=generator)
            if key.endswith("running_var"):
                value.copy_(0.5 + noise.abs())  # positive, away from 1
            elif key.endswith(("running_mean", "bias")):
                value.copy_(0.1 * noise)
            elif key.endswith("weight") and value.dim() == 1:  # BN scale
                value.copy_(1.0 + 0.2 * noise)
            else:
                value.add_(0.02 * noise)
    return {k: v.contiguous() for k, v in state.items()}


def main(argv: list[str] | None = None) -> int:
    """Write seeded random weights for every temporal pose entry into the weights folder."""
    from lrp.models import write_random_weights

    # The builder by name, not __name__: this runs as __main__.
    for path in write_random_weights("lrp.models.temporal_pose:temporal_pose", random_state):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
