"""Run an SR network tile by tile, so that large images fit on the device.

The input stays on the host; each tile is cut with `overlap` extra pixels on every side (clipped
at the image border), moved to the device, upscaled, and only its core is pasted into the host
output. With an overlap larger than the network's effective reach the result equals the untiled
one to within rounding (RRDBNet's influence decays fast: 16-32 LR pixels suffice for 1 grey
level). On CUDA, an out-of-memory error halves the tile and starts the image again.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch

from lrp.errors import LrpError

MIN_TILE = 16


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of the tiles covering [0, length) with tiles of `tile` pixels (the last one shorter)."""
    return list(range(0, length, tile))


def tiled_forward(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    device: torch.device,
    *,
    quiet: bool = True,
    retry_on_oom: bool | None = None,
) -> torch.Tensor:
    """`fn` (uint8 NCHW on the device -> uint8 NCHW, `scale` times larger) applied to `x` (on the
    host) tile by tile; returns the uint8 result on the host."""
    if retry_on_oom is None:
        retry_on_oom = device.type == "cuda"
    while True:
        try:
            return _tiled_once(fn, x, scale, tile, overlap, device)
        except torch.cuda.OutOfMemoryError:
            if not retry_on_oom or tile // 2 < MIN_TILE:
                raise LrpError(f"out of memory on {device} even with --tile {tile}") from None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            tile //= 2
            if not quiet:
                print(f"lrp superres: out of memory on {device}; retrying with --tile {tile}", file=sys.stderr)


def _tiled_once(fn, x, scale, tile, overlap, device) -> torch.Tensor:
    n, c, h, w = x.shape
    out = None
    for y0 in tile_starts(h, tile):
        for x0 in tile_starts(w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            # The tile with its margin, clipped at the borders.
            py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
            patch = x[:, :, py0:py1, px0:px1].to(device)
            with torch.inference_mode():
                res = fn(patch)
            if out is None:
                out = torch.empty((n, res.shape[1], h * scale, w * scale), dtype=res.dtype)
            core = res[:, :, (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = core.cpu()
            del patch, res, core
    return out
