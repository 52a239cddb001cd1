"""What every image-writing step (degrade, superres) shares: where each image goes, which
outputs an earlier run already finished, and the document moved into the new frames.

No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lrp import geometry
from lrp.document import derive
from lrp.errors import LrpError
from lrp.images import png_name


@dataclass(frozen=True)
class Frame:
    """Where one image goes: its new size, where to sample the old one, and the step xform."""

    size: tuple[int, int]  # (w, h)
    sample_xform: list  # positions the resampler reads (MATLAB uses the requested scale)
    step_xform: list  # what the document records: old frame -> new frame


def reframed(doc: dict, frames: dict[int, Frame], image_root: Path) -> dict:
    """A copy of `doc` with GT and results in the new frames, PNG names, the new image root."""
    out = derive(doc)
    geometry.reframe_document(
        out,
        {iid: f.size for iid, f in frames.items()},
        {iid: f.step_xform for iid, f in frames.items()},
        {img["id"]: png_name(img["file_name"]) for img in doc["images"]},
    )
    out["lrp"]["image_root"] = str(image_root)
    return out


def output_targets(doc: dict, root: Path) -> dict[int, Path]:
    """Output PNG path per image; refuses names that collide or escape the output folder."""
    targets, owner = {}, {}
    for img in doc["images"]:
        target = (root / png_name(img["file_name"])).resolve()
        if root != target and root not in target.parents:
            raise LrpError(f"image {img['id']}: file_name {img['file_name']!r} points outside the image folder")
        if target in owner:
            raise LrpError(f"images {owner[target]} and {img['id']} would both be written to {target}")
        owner[target] = img["id"]
        targets[img["id"]] = target
    return targets


def finished_png(path: Path, size: tuple[int, int]) -> bool:
    """A PNG from an earlier run of the same step (writes are atomic, so it is whole)."""
    if not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size == tuple(size)
    except Exception:  # unreadable leftovers are simply redone
        return False


def drop_images(doc: dict, image_ids: set) -> dict:
    """Remove images with their annotations and results (in place); returns `doc`."""
    doc["images"] = [i for i in doc["images"] if i["id"] not in image_ids]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] not in image_ids]
    for key in ("detections", "poses"):
        doc["lrp"][key] = [r for r in doc["lrp"].get(key) or [] if r["image_id"] not in image_ids]
    return doc
