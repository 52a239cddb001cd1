"""A tiny temporal SR network: 2r+1 neighbouring frames fused early, as video SR models take them.

The frames t-r .. t+r arrive stacked on the channel axis (N, 3*(2r+1), H, W), RGB in [0, 1],
frame t in the middle; `lrp superres` builds that stack from the document's sequences because the
registry spec says `frames=2r+1` (lrp.frames.frame_windows, clamped at the sequence ends). The
network is conv -> a few conv+LeakyReLU -> pixel shuffle, plus the centre frame enlarged by
nearest neighbour as a residual: a stand-in of STAR-Pose's shape (T=5 frames in, one SR frame
out), not its architecture. There are no trained weights: `python -m lrp.models.temporal_sr`
writes seeded random ones, so the entry proves the plumbing of frame windows, never quality.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn


class EarlyFusionSR(nn.Module):
    def __init__(self, frames: int = 5, scale: int = 4, width: int = 16, blocks: int = 2):
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd (2r+1), got {frames}")
        self.frames, self.scale = frames, scale
        self.conv_first = nn.Conv2d(3 * frames, width, 3, 1, 1)
        self.body = nn.Sequential(*[m for _ in range(blocks) for m in (nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.1))])
        self.conv_up = nn.Conv2d(width, 3 * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3 * self.frames:
            raise ValueError(f"expected {self.frames} RGB frames stacked on channels ({3 * self.frames}), got {x.shape[1]} channels")
        centre = x[:, 3 * (self.frames // 2) : 3 * (self.frames // 2) + 3]
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        out = self.shuffle(self.conv_up(self.body(feat)))
        return out + F.interpolate(centre, scale_factor=self.scale, mode="nearest")


def temporal_sr(frames: int = 5, scale: int = 4, width: int = 16, blocks: int = 2) -> EarlyFusionSR:
    return EarlyFusionSR(frames, scale, width, blocks)


def random_state(spec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights, small enough that the output stays near the nearest-neighbour
    residual, with non-zero biases (so that a wrong stacking order shows)."""
    torch.manual_seed(seed)
    net = spec.build()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1).add_(torch.randn_like(p) * 0.01)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def main(argv: list[str] | None = None) -> int:
    """Write seeded random weights for every temporal SR entry into the weights folder."""
    from lrp.models import write_random_weights

    # The builder by name, not __name__: this runs as __main__.
    for path in write_random_weights("lrp.models.temporal_sr:temporal_sr", random_state):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
