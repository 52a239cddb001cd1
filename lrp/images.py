"""Reading and writing images, in parallel threads. No torch here.

PIL releases the GIL while it decodes and encodes, and numpy while it multiplies matrices, so a
thread pool keeps both cores busy without the start-up cost of processes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from lrp.errors import LrpError

# A truncated JPEG must fail loudly, never come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_DONE = object()
T = TypeVar("T")
R = TypeVar("R")

# zlib level 1: PNG stays lossless, encoding is several times faster than PIL's default 6.
PNG_COMPRESS_LEVEL = 1


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1) + 1))


def load_rgb(path: str | os.PathLike, image_id=None, expect_size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB as stored: EXIF orientation is ignored (COCO annotates stored pixels)."""
    where = f"image {image_id} ({path})" if image_id is not None else str(path)
    try:
        with Image.open(path) as im:
            # The header is enough to refuse a wrong size before decoding (or allocating) it.
            if expect_size is not None and im.size != tuple(expect_size):
                w, h = im.size
                raise LrpError(f"{where}: is {w}x{h} pixels but the document says {expect_size[0]}x{expect_size[1]}")
            im.load()
            arr = to_rgb8(im, where)
    except FileNotFoundError:
        raise LrpError(f"{where}: file not found") from None
    except IsADirectoryError:
        raise LrpError(f"{where}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise LrpError(f"{where}: not an image or corrupt") from None
    except Image.DecompressionBombError as e:
        raise LrpError(f"{where}: refused: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise LrpError(f"{where}: cannot decode: {e}") from None
    return arr


def to_rgb8(im: Image.Image, where: str) -> np.ndarray:
    """HxWx3 uint8 from a decoded image, keeping all 8 significant bits of deeper images.

    PIL's convert("RGB") clips 16-bit grey (mode I;16) at 255, saturating almost every pixel.
    We take the high byte instead, which is what PIL already does for 48-bit RGB PNGs and what
    OpenCV's imread does for 16-bit images; 32-bit integer and float images are refused.
    """
    if im.mode.startswith("I;16"):
        grey = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise LrpError(f"{where}: {kind} images (mode {im.mode}) are not supported; convert it to 8 or 16 bits per channel")
    return np.asarray(im.convert("RGB"))


def encode_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    desc: str = "",
    quiet: bool = False,
    total: int | None = None,
) -> Iterator[R]:
    """Ordered map over a thread pool with a progress bar on stderr; the first error stops it."""
    from tqdm import tqdm

    items = list(items)
    workers = workers or default_workers()
    # disable=None: no bar when stderr is not a terminal (logs, CI, Make output stay clean).
    bar = tqdm(total=total or len(items), desc=desc, disable=True if quiet else None, leave=False, unit="img")
    try:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # Bounded look-ahead keeps memory flat on large datasets.
            pending = []
            it = iter(items)
            for item in it:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                fut = pending.pop(0)
                try:
                    result = fut.result()
                except BaseException:
                    for p in pending:
                        p.cancel()
                    raise
                nxt = next(it, _DONE)
                if nxt is not _DONE:
                    pending.append(pool.submit(fn, nxt))
                bar.update(1)
                yield result
    finally:
        bar.close()


def png_name(file_name: str) -> str:
    return str(Path(file_name).with_suffix(".png"))
