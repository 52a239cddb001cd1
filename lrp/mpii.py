"""`lrp mpii`: the MPII validation set of the official HRNet code as a document, with its crops.

Users reproducing PCKh@0.5 on MPII (HRNet, SRPose, MGIL) have the two files of
deep-high-resolution-net.pytorch's `data/mpii/annot/`:
- `valid.json`: a list of people, {"image", "center": [x, y], "scale", "joints": 16 x [x, y],
  "joints_vis": 16 x 0/1}, in MATLAB's 1-based pixel coordinates, joints in MPII's order (lrp's
  MPII_16 order);
- `gt_valid.mat` (MATLAB v5): `jnt_missing` 16xN, `pos_gt_src` 16x2xN, `headboxes_src` 2x2xN
  ([[x1, y1], [x2, y2]] per person), `dataset_joints` (joint names); person n is entry n of
  valid.json.

The official test (`lib/dataset/mpii.py` `_get_db`) cuts each person from their centre and
scale, not from a box: the centre moves down 15 x scale pixels, the scale grows 1.25x (both only
where the centre's x is not -1), then 1 comes off the centre to make it 0-based. The document
keeps that crop as the annotation field `lrp_crop` {"center": [x, y], "size": [w, h]} in its own
(0-based) frame, size = 1.25 x 200 x scale on both axes, which `lrp pose --boxes gt` cuts as
given and every frame change moves (lrp.geometry.map_crop). The official `evaluate` adds the 1
back to the predictions and scores them against `pos_gt_src` with head size 0.6 x the head box
diagonal: `lrp pck --head` on these keypoints and head boxes is that computation.

Per valid.json entry, in file order, one annotation (ids 1..N; `lrp_index` = its 0-based place
in valid.json, its column in gt_valid.mat): keypoints = `pos_gt_src` - 1 with v = 2 where not
`jnt_missing` (the evaluation's truth) given --gt, else valid.json's joints - 1 where
`joints_vis` (v = 0 joints are written (0, 0, 0), as COCO does); `head_box` [x1 - 1, y1 - 1,
x2 - x1, y2 - y1] (only with --gt); `bbox` the unpadded square of 200 x scale around the moved
centre, clipped to the image, `area` its w x h. One image per distinct image name, sized from the
file's header. Coordinates of joints that are missing are never read, whatever they hold.

No torch here; PIL reads image headers only.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.options import Output, Quiet

JOINTS = 16
CENTER_SHIFT = 15.0  # `_get_db`: c[1] += 15 * s[1], "to avoid cropping limbs"
CROP_PADDING = 1.25  # `_get_db`: s *= 1.25
GT_VARIABLES = ("jnt_missing", "pos_gt_src", "headboxes_src")
ENTRY_KEYS = ("image", "center", "scale", "joints", "joints_vis")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --------------------------------------------------------------------------------------------
# The official files


def read_valid(path: Path) -> list[dict]:
    """valid.json's entries, each checked: LrpError naming the entry and key at fault."""
    from lrp.document import check_file_name, read_json_file

    data = read_json_file(path)
    if not isinstance(data, list):
        raise LrpError(f"{path}: not MPII annotations: expected a JSON list of people (annot/valid.json), got {type(data).__name__}")
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict):
            raise LrpError(f"{where} is not an object")
        for key in ENTRY_KEYS:
            if key not in e:
                raise LrpError(f"{where} has no '{key}'")
        check_file_name(e["image"], f"{where}: key 'image'")
        c, s = e["center"], e["scale"]
        if not (isinstance(c, list) and len(c) == 2 and all(map(_finite, c))):
            raise LrpError(f"{where}: key 'center' must be [x, y] of finite numbers, got {c!r}")
        if not (_finite(s) and s > 0):
            raise LrpError(f"{where}: key 'scale' must be a finite number > 0, got {s!r}")
        joints, vis = e["joints"], e["joints_vis"]
        if not isinstance(joints, list) or len(joints) != JOINTS:
            n = len(joints) if isinstance(joints, list) else "no list of"
            raise LrpError(f"{where}: key 'joints' has {n} joints, {JOINTS} expected (MPII's order)")
        if not isinstance(vis, list) or len(vis) != JOINTS:
            n = len(vis) if isinstance(vis, list) else "no list of"
            raise LrpError(f"{where}: key 'joints_vis' has {n} values, {JOINTS} expected (MPII's order)")
        for j, (xy, v) in enumerate(zip(joints, vis)):
            if v not in (0, 1) or isinstance(v, bool):
                raise LrpError(f"{where}: key 'joints_vis[{j}]' must be 0 or 1, got {v!r}")
            if not (isinstance(xy, list) and len(xy) == 2 and all(map(_finite, xy))):
                raise LrpError(f"{where}: key 'joints[{j}]' must be [x, y] of finite numbers, got {xy!r}")
    return data


def read_gt(path: Path, count: int, valid: Path) -> dict:
    """gt_valid.mat's three matrices as (N, ...) arrays: jnt_missing (N, 16), pos_gt_src
    (N, 16, 2), headboxes_src (N, 2, 2); N must be valid.json's length."""
    import numpy as np

    from lrp.keypoints import MPII_16
    from lrp.sources.matlab import read_mat

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LrpError(f"{path}: no such file") from None
    except OSError as e:
        raise LrpError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        variables = read_mat(data, only=GT_VARIABLES)
    except ValueError as e:
        raise LrpError(f"{path}: {e}") from None
    for name in GT_VARIABLES:
        if name not in variables:
            raise LrpError(f"{path}: no variable '{name}' (the official annot/gt_valid.mat holds {', '.join(GT_VARIABLES)})")
    out = {}
    for name, lead in (("jnt_missing", (JOINTS,)), ("pos_gt_src", (JOINTS, 2)), ("headboxes_src", (2, 2))):
        a = variables[name]
        if not isinstance(a, np.ndarray) or a.dtype == object:
            raise LrpError(f"{path}: '{name}' is a cell array, not a numeric matrix")
        if a.shape == lead:  # MATLAB drops a trailing singleton dimension: one person
            a = a[..., None]
        if a.shape[:-1] != lead or a.ndim != len(lead) + 1:
            want = "x".join(map(str, lead)) + "xN"
            raise LrpError(f"{path}: '{name}' is {'x'.join(map(str, a.shape))}, expected {want}")
        if a.shape[-1] != count:
            raise LrpError(f"{path}: '{name}' holds {a.shape[-1]} people, {valid} {count}: the two files list the same people in the same order")
        out[name] = np.moveaxis(a, -1, 0)
    missing, pos, heads = out["jnt_missing"], out["pos_gt_src"], out["headboxes_src"]
    bad = ~np.isin(missing, (0.0, 1.0))
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise LrpError(f"{path}: jnt_missing[{j}, {n}] (person {n}, {MPII_16.keypoints[j]}) is {missing[n, j]!r}, not 0 or 1")
    bad = ~np.isfinite(pos).all(axis=2) & (missing == 0)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise LrpError(f"{path}: pos_gt_src[{j}, :, {n}] (person {n}, {MPII_16.keypoints[j]}) is not finite")
    bad = ~np.isfinite(heads).all(axis=(1, 2))
    if bad.any():
        raise LrpError(f"{path}: headboxes_src[:, :, {int(np.argmax(bad))}] (person {int(np.argmax(bad))}) is not finite")
    return out


def official_crop(center, scale) -> tuple[list[float], float]:
    """The crop `_get_db` cuts, 0-based: (centre [x, y], side = 200 x its padded scale), in the
    float64 arithmetic of the official code, in its order."""
    from lrp.heatmaps import PIXEL_STD

    cx, cy, s = float(center[0]), float(center[1]), float(scale)
    if cx != -1:
        cy = cy + CENTER_SHIFT * s
        s = s * CROP_PADDING
    return [cx - 1, cy - 1], s * PIXEL_STD


def person_box(center: list[float], scale: float, width: int, height: int) -> list[float]:
    """The unpadded square of 200 x scale around the crop's centre, clipped to the image."""
    from lrp.heatmaps import PIXEL_STD

    half = 0.5 * PIXEL_STD * float(scale)
    x1, y1 = max(0.0, center[0] - half), max(0.0, center[1] - half)
    x2, y2 = min(float(width), center[0] + half), min(float(height), center[1] + half)
    return [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]


# --------------------------------------------------------------------------------------------
# The document


def mpii_document(valid: Path, images: Path, gt: Path | None = None, *, quiet: bool = False) -> dict:
    """valid.json (and gt_valid.mat) with the image folder -> the document (nothing written)."""
    from PIL import Image, UnidentifiedImageError

    from lrp.document import add_history, adopt, image_path
    from lrp.keypoints import MPII_16, person_category

    valid, images = Path(valid), Path(images)
    entries = read_valid(valid)
    truth = read_gt(Path(gt), len(entries), valid) if gt is not None else None
    if not images.is_dir():
        raise LrpError(f"{images}: no such image folder")
    image_ids: dict[str, int] = {}
    doc_images = []
    for i, e in enumerate(entries):
        if e["image"] in image_ids:
            continue
        img = {"id": len(doc_images) + 1, "file_name": e["image"]}
        probe = {"lrp": {"image_root": str(images.resolve())}}
        path = image_path(probe, img)
        try:
            with Image.open(path) as im:  # the header only: no pixels are decoded
                img["width"], img["height"] = im.size
        except FileNotFoundError:
            raise LrpError(f"{path}: no such image (entry {i} of {valid})") from None
        except (UnidentifiedImageError, OSError) as err:
            raise LrpError(f"{path}: not an image or unreadable (entry {i} of {valid}): {err}") from None
        image_ids[e["image"]] = img["id"]
        doc_images.append(img)
    sizes = {img["id"]: (img["width"], img["height"]) for img in doc_images}
    annotations = []
    for i, e in enumerate(entries):
        iid = image_ids[e["image"]]
        center, side = official_crop(e["center"], e["scale"])
        if truth is not None:
            present = truth["jnt_missing"][i] == 0
            xy = truth["pos_gt_src"][i]
        else:
            present = [v == 1 for v in e["joints_vis"]]
            xy = e["joints"]
        keypoints = []
        for j in range(JOINTS):
            keypoints += [float(xy[j][0]) - 1, float(xy[j][1]) - 1, 2] if present[j] else [0, 0, 0]
        box = person_box(center, e["scale"], *sizes[iid])
        ann = {
            "id": i + 1, "image_id": iid, "category_id": 1, "iscrowd": 0, "bbox": box, "area": box[2] * box[3],
            "keypoints": keypoints, "num_keypoints": int(sum(bool(p) for p in present)),
            "lrp_crop": {"center": center, "size": [side, side]}, "lrp_index": i,
        }
        if truth is not None:
            (x1, y1), (x2, y2) = truth["headboxes_src"][i]
            ann["head_box"] = [float(x1) - 1, float(y1) - 1, float(x2 - x1), float(y2 - y1)]
        annotations.append(ann)
    data = {
        "info": {"description": f"MPII people of {valid.name} (the official HRNet annotations)"}, "licenses": [],
        "images": doc_images, "annotations": annotations, "categories": [person_category(MPII_16)],
    }
    doc = adopt(data, str(valid), images=images)
    add_history(doc, "mpii", {"valid": str(valid.resolve()), "gt": str(Path(gt).resolve()) if gt is not None else None, "images": str(images.resolve())})
    if not quiet:
        source = f"keypoints and head boxes from {gt}" if gt is not None else (
            "keypoints from its joints; no --gt gt_valid.mat, so no head boxes: PCKh (lrp pck --head) is impossible"
        )
        print(f"lrp mpii: {len(annotations)} people in {len(doc_images)} images from {valid}; {source}", file=sys.stderr)
    return doc


# --------------------------------------------------------------------------------------------
# CLI


def command(
    valid: Annotated[Path, typer.Argument(help="The official annot/valid.json (a list of people with centre, scale and joints).", show_default=False)],
    gt: Annotated[
        Optional[Path],
        typer.Option("--gt", help="The official annot/gt_valid.mat: the evaluation's joints and head boxes (needed for PCKh).", show_default=False),
    ] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="MPII's image folder (the file names of valid.json).", show_default=False)] = None,
    output: Output = None,
    quiet: Quiet = False,
):
    """Make a document of MPII's validation people from the official HRNet annotation files.

    One annotation per valid.json entry (in its order; `lrp_index` is the entry's place), one image
    per image name (sizes read from the file headers). With --gt gt_valid.mat, keypoints and head
    boxes are the official evaluation's (`pos_gt_src` and `headboxes_src` - 1, `jnt_missing`);
    without it, valid.json's joints - 1 and no head boxes (no PCKh). Each annotation carries
    `lrp_crop`, the crop the official test cuts (centre moved down 15 x scale, 1.25 x 200 x scale
    square, 0-based), which `lrp pose --boxes gt` uses as given and `lrp degrade` moves with the
    frame; `bbox` is the unpadded 200 x scale square, clipped to the image.

    Example:

        lrp mpii annot/valid.json --gt annot/gt_valid.mat --images images -o mpii.json

        lrp pose --model hrnet-w32-256x256-mpii --boxes gt mpii.json | lrp pck --head
    """
    from lrp.outputs import write_result

    if images is None:
        raise UsageError("--images DIR is needed: the folder of MPII's images (the file names in valid.json)")
    write_result("mpii", output, lambda: mpii_document(valid, images, gt, quiet=quiet))
