"""The stream document (schema `lrp/1`): reading, checking, provenance and atomic writing.

A document is a plain COCO dataset dict plus an `lrp` block (see DESIGN.md section 1). We keep
it as plain dicts on purpose: whatever pycocotools, jq or a user script can read, our code reads
the same way. No torch here.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from lrp import __version__
from lrp.errors import LrpError, UsageError

SCHEMA = "lrp/1"
IDENTITY = [1.0, 1.0, 0.0, 0.0]
RESULT_KEYS = ("detections", "poses")


# --------------------------------------------------------------------------------------------
# Reading


def parse_json(text: str | bytes, name: str) -> Any:
    constants: list[str] = []  # NaN, Infinity: Python accepts them, JSON has no such numbers

    def constant(c: str):
        constants.append(c)
        return _NON_FINITE

    from lrp import jsonio

    try:
        # json.loads' value, through orjson where that is the same
        value = jsonio.loads(text, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise LrpError(f"{name}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise LrpError(f"{name}: not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise LrpError(f"{name}: not valid JSON: nested too deeply") from None
    if constants:
        raise LrpError(f"{name}: {_where(value, _NON_FINITE)}: {constants[0]} is not a JSON number (values must be finite)")
    return value


_NON_FINITE = object()


def _where(value: Any, target: object) -> str:
    """Name the place of `target` in a parsed document: `annotation 5: key 'bbox'`."""
    stack: list[tuple[Any, list]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return _describe_path(value, path)
        if isinstance(node, dict):
            stack.extend((v, path + [k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path + [i]) for i, v in enumerate(node))
    return "a value"


def _describe_path(value: Any, path: list) -> str:
    owners = {"images": "image", "annotations": "annotation", "categories": "category"}
    node, head = value, []
    for depth, step in enumerate(path):
        parent, node = node, node[step]
        if isinstance(step, int) and isinstance(node, dict) and isinstance(parent, list):
            label = owners.get(head[-1]) if len(head) == 1 else None
            if label and "id" in node:
                head = [f"{label} {node['id']}"]
            elif "image_id" in node:
                head = [f"{'.'.join(map(str, head))}[{step}] (image {node['image_id']})"]
            else:
                head[-1:] = [f"{head[-1] if head else ''}[{step}]"]
            rest = path[depth + 1 :]
            if rest:
                key = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in rest).lstrip(".")
                return f"{head[0]}: key '{key}'"
            return head[0]
        head.append(step)
    return "key '" + ".".join(map(str, path)) + "'"


def read_json_file(path: str | os.PathLike, name: str | None = None) -> Any:
    name = name or str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LrpError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise LrpError(f"{name}: is a directory, not a JSON file") from None
    except OSError as e:
        raise LrpError(f"{name}: cannot read: {e.strerror}") from None
    return parse_json(data, name)


def adopt(data: Any, name: str, *, images: str | os.PathLike | None = None) -> dict:
    """Check a parsed JSON value and give it an `lrp` block if it is a plain COCO dataset."""
    check_coco(data, name)
    check_document(data, name)
    doc = data
    if "lrp" not in doc or not isinstance(doc.get("lrp"), dict):
        if images is None:
            raise UsageError(f"{name}: a plain COCO file needs --images DIR (the folder of its file_names)")
        root = str(Path(images).resolve())
        doc["lrp"] = {
            "schema": SCHEMA,
            "image_root": root,
            "origin_root": root,
            "degradation": None,
            "history": [],
            "detections": [],
            "poses": [],
        }
        for img in doc["images"]:
            img.setdefault("lrp", {})
            img["lrp"].setdefault(
                "origin", {"file_name": img["file_name"], "width": img["width"], "height": img["height"]}
            )
            img["lrp"].setdefault("xform", list(IDENTITY))
    else:
        block = doc["lrp"]
        schema = block.get("schema")
        if schema != SCHEMA:
            raise LrpError(f"{name}: unknown lrp schema {schema!r} (expected {SCHEMA!r})")
        if images is not None:
            block["image_root"] = str(Path(images).resolve())
        for key in ("image_root", "origin_root"):
            value = block.get(key, "") if key == "image_root" else block.get(key)
            if value is not None and (not isinstance(value, str) or not value or "\0" in value):
                raise LrpError(f"{name}: key 'lrp.{key}' is missing or not a folder path")
        block.setdefault("history", [])
        history = block["history"]
        if not (isinstance(history, list) and all(isinstance(h, dict) and isinstance(h.get("command"), str) for h in history)):
            raise LrpError(f"{name}: key 'lrp.history' must be a list of steps, each with a 'command'")
        if not isinstance(block.get("degradation"), (dict, type(None))):
            raise LrpError(f"{name}: key 'lrp.degradation' must be an object or null")
        if not block["history"]:  # nothing derived yet: this is the origin dataset
            block.setdefault("origin_root", block["image_root"])
        block.setdefault("degradation", None)
        for key in RESULT_KEYS:
            block.setdefault(key, [])
        for img in doc["images"]:
            meta = img.setdefault("lrp", {})
            meta.setdefault("origin", {"file_name": img["file_name"], "width": img["width"], "height": img["height"]})
            meta.setdefault("xform", list(IDENTITY))
    return doc


def check_coco(data: Any, name: str) -> None:
    """Is this a COCO dataset at all? One clear line naming what is wrong."""
    if isinstance(data, list):
        raise LrpError(
            f"{name}: not a COCO dataset: it is a JSON list (a results file?); "
            "expected an object with 'images', 'annotations' and 'categories'"
        )
    if not isinstance(data, dict):
        raise LrpError(f"{name}: not a COCO dataset: expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise LrpError(f"{name}: not a COCO dataset: missing key '{key}'")
        if not isinstance(data[key], list):
            raise LrpError(f"{name}: not a COCO dataset: '{key}' is not a list")
    data.setdefault("info", {})
    data.setdefault("licenses", [])


def check_document(doc: dict, name: str) -> None:
    """Ids unique, references resolve, sizes and values sane. Raises LrpError naming the culprit.

    This is the one place values are validated: everything downstream may trust a document that
    passed (finite numbers, boxes of four, keypoints of 3*K, even polygons, decodable masks).
    """
    images: dict = {}
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict):
            raise LrpError(f"{name}: images[{i}] is not an object")
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise LrpError(f"{name}: images[{i}] has no '{key}'")
        iid = img["id"]
        if not _is_int(iid):
            raise LrpError(f"{name}: image id {iid!r} is not an integer")
        if iid in images:
            raise LrpError(f"{name}: duplicate image id {iid}")
        images[iid] = img
        if not (_is_int(img["width"]) and _is_int(img["height"])) or img["width"] <= 0 or img["height"] <= 0:
            raise LrpError(f"{name}: image {iid}: width/height must be positive integers")
        check_file_name(img["file_name"], f"{name}: image {iid}: key 'file_name'")
        meta = img.get("lrp")
        if meta is not None:
            _check_image_meta(meta, f"{name}: image {iid}")
    keypoint_counts: dict = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c:
            raise LrpError(f"{name}: a category has no 'id'")
        if not _is_int(c["id"]):
            raise LrpError(f"{name}: category id {c['id']!r} is not an integer")
        if c["id"] in keypoint_counts:
            raise LrpError(f"{name}: duplicate category id {c['id']}")
        names = c.get("keypoints")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise LrpError(f"{name}: category {c['id']}: key 'keypoints' must be a list of names")
        keypoint_counts[c["id"]] = len(names) if names is not None else None
    ann_ids: set = set()
    for i, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            raise LrpError(f"{name}: annotations[{i}] is not an object")
        aid = ann.get("id")
        if aid is None:
            raise LrpError(f"{name}: annotations[{i}] has no 'id'")
        if isinstance(aid, (dict, list)):
            raise LrpError(f"{name}: annotations[{i}]: id {aid!r} is not a number")
        if aid in ann_ids:
            raise LrpError(f"{name}: duplicate annotation id {aid}")
        ann_ids.add(aid)
        iid = ann.get("image_id")
        if isinstance(iid, (dict, list)) or iid not in images:
            raise LrpError(f"{name}: annotation {aid} refers to unknown image id {iid!r}")
        cid = ann.get("category_id")
        if isinstance(cid, (dict, list)) or cid not in keypoint_counts:
            raise LrpError(f"{name}: annotation {aid} refers to unknown category id {cid!r}")
        bbox = ann.get("bbox")
        if bbox is not None and (not isinstance(bbox, list) or len(bbox) != 4):
            raise LrpError(f"{name}: annotation {aid}: 'bbox' must be [x, y, w, h]")
        where = f"{name}: annotation {aid} (image {iid})"
        for key, allowed in (("iscrowd", (0, 1)), ("num_keypoints", None)):
            value = ann.get(key)
            if value is not None and not (_is_int(value) and (value in allowed if allowed else value >= 0)):
                raise LrpError(f"{where}: key '{key}' must be {'0 or 1' if allowed else 'an integer >= 0'}, got {value!r}")
        _check_values(ann, images[iid], keypoint_counts[cid], where)
        if "lrp_crop" in ann:
            _check_crop(ann["lrp_crop"], where)
    block = doc.get("lrp")
    if isinstance(block, dict):
        for key in RESULT_KEYS:
            results = block.get(key) or []
            if not isinstance(results, list):
                raise LrpError(f"{name}: 'lrp.{key}' is not a list")
            _check_results(results, images, keypoint_counts, f"{name}: lrp.{key}")


def check_results(results: list, doc: dict, where: str) -> None:
    """A COCO results list against the images and categories of a checked document."""
    counts = {c["id"]: (len(c["keypoints"]) if isinstance(c.get("keypoints"), list) else None) for c in doc["categories"]}
    _check_results(results, images_by_id(doc), counts, where)


def _check_results(results: list, images: dict, keypoint_counts: dict, where: str) -> None:
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise LrpError(f"{where}[{i}] is not an object")
        iid = r.get("image_id")
        if isinstance(iid, (dict, list)) or iid not in images:
            raise LrpError(f"{where}[{i}] refers to unknown image id {iid!r}")
        if "score" not in r:
            raise LrpError(f"{where}[{i}] (image {iid}) has no 'score'")
        if not _is_number(r["score"]):
            raise LrpError(f"{where}[{i}] (image {iid}): key 'score' must be a finite number, got {r['score']!r}")
        cid = r.get("category_id")
        if not _is_int(cid):
            raise LrpError(f"{where}[{i}] (image {iid}): key 'category_id' must be an integer, got {cid!r}")
        if cid not in keypoint_counts:
            raise LrpError(f"{where}[{i}] (image {iid}) refers to unknown category id {cid}")
        bbox = r.get("bbox")
        if bbox is not None and (not isinstance(bbox, list) or len(bbox) != 4):
            raise LrpError(f"{where}[{i}] (image {iid}): 'bbox' must be [x, y, w, h]")
        _check_values(r, images[iid], keypoint_counts[cid], f"{where}[{i}] (image {iid})")


def check_file_name(file_name: Any, where: str) -> None:
    """A file name relative to an image root: a non-empty string naming a file."""
    if not isinstance(file_name, str) or file_name.strip() in ("", ".", "..") or "\0" in file_name or file_name.endswith("/"):
        raise LrpError(f"{where} must name an image file relative to the image folder, got {file_name!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v: Any) -> bool:
    # map() over C functions: a COCO train file has tens of millions of these numbers
    if not isinstance(v, list):
        return False
    kinds = set(map(type, v))
    return (kinds <= _NUMBER_TYPES or all(issubclass(k, (int, float)) and not issubclass(k, bool) for k in kinds)) and all(map(math.isfinite, v))


_NUMBER_TYPES = {int, float}  # exact types: bool, an int subclass, is not a number here


def _check_image_meta(meta: Any, where: str) -> None:
    if not isinstance(meta, dict):
        raise LrpError(f"{where}: key 'lrp' is not an object")
    xform = meta.get("xform")
    if xform is not None and not (_numbers(xform) and len(xform) == 4 and xform[0] > 0 and xform[1] > 0):
        raise LrpError(f"{where}: key 'lrp.xform' must be [sx, sy, tx, ty] with sx, sy > 0, got {xform!r}")
    origin = meta.get("origin")
    if origin is not None:
        if not isinstance(origin, dict) or not all(_is_int(origin.get(k)) and origin[k] > 0 for k in ("width", "height")):
            raise LrpError(f"{where}: key 'lrp.origin' must hold file_name and positive integer width, height")
        check_file_name(origin.get("file_name"), f"{where}: key 'lrp.origin.file_name'")


def _check_values(item: dict, img: dict, num_keypoints: int | None, where: str) -> None:
    """The geometry of one annotation or result: finite, non-negative sizes, well-formed shapes."""
    bbox = item.get("bbox")
    if bbox is not None and not (_numbers(bbox) and bbox[2] >= 0 and bbox[3] >= 0):
        raise LrpError(f"{where}: key 'bbox' must be four finite numbers with w, h >= 0, got {bbox!r}")
    area = item.get("area")
    if area is not None and not (_is_number(area) and area >= 0):
        raise LrpError(f"{where}: key 'area' must be a finite number >= 0, got {area!r}")
    kps = item.get("keypoints")
    if kps is not None:
        if not _numbers(kps):
            raise LrpError(f"{where}: key 'keypoints' must be a list of finite numbers")
        if (num_keypoints is not None and len(kps) != 3 * num_keypoints) or len(kps) % 3:
            need = f"{3 * num_keypoints} (3 per keypoint of the category)" if num_keypoints is not None else "a multiple of 3"
            raise LrpError(f"{where}: key 'keypoints' has {len(kps)} values, expected {need}")
    seg = item.get("segmentation")
    if seg is None:
        return
    if isinstance(seg, list):
        for poly in seg:
            if not _numbers(poly) or len(poly) % 2:
                raise LrpError(f"{where}: key 'segmentation' must hold polygons of x, y pairs (finite numbers)")
    elif isinstance(seg, dict):
        _check_rle(seg, (img["height"], img["width"]), where)
    else:
        raise LrpError(f"{where}: key 'segmentation' must be a list of polygons or an RLE object")


def _check_crop(crop: Any, where: str) -> None:
    """`lrp_crop`, the crop a dataset's official test cuts (lrp mpii, lrp pose --boxes gt)."""
    if not (
        isinstance(crop, dict)
        and _numbers(crop.get("center")) and len(crop["center"]) == 2
        and _numbers(crop.get("size")) and len(crop["size"]) == 2 and crop["size"][0] > 0 and crop["size"][1] > 0
    ):
        raise LrpError(f"{where}: key 'lrp_crop' must be {{\"center\": [x, y], \"size\": [w, h]}} of finite numbers with w, h > 0, got {crop!r}")


def _check_rle(rle: dict, size: tuple[int, int], where: str) -> None:
    """An RLE decodes to exactly the image's pixels (pycocotools would read past its buffer)."""
    if rle.get("size") != list(size):
        raise LrpError(f"{where}: key 'segmentation.size' is {rle.get('size')!r}, but the image is [{size[0]}, {size[1]}] (height, width)")
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = _rle_counts(counts)
    if not (isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts) and sum(counts) == size[0] * size[1]):
        raise LrpError(f"{where}: key 'segmentation.counts' is not an RLE of {size[0]}x{size[1]} pixels")


def _rle_counts(text: str) -> list | None:
    """COCO's compressed RLE string (pycocotools rleFrString) as run lengths; None if malformed."""
    counts: list[int] = []
    p, n = 0, len(text)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def load_results(path: str, doc: dict) -> list:
    """A COCO results list (as `loadRes` takes) checked against the images of `doc`."""
    data = read_json_file(path)
    if not isinstance(data, list):
        raise LrpError(f"{path}: not a COCO results list")
    check_results(data, doc, path)
    return data


# --------------------------------------------------------------------------------------------
# Small accessors


def images_by_id(doc: dict) -> dict[int, dict]:
    return {img["id"]: img for img in doc["images"]}


def image_root(doc: dict) -> Path:
    return Path(doc["lrp"]["image_root"])


def origin_root(doc: dict) -> str | None:
    """The image folder of the dataset the pipeline started from (None in documents that predate it)."""
    return doc["lrp"].get("origin_root")


def image_path(doc: dict, img: dict) -> Path:
    """The file an image is read from: the one path resolution every command uses.

    `file_name` must stay inside the image root once `..` and symbolic links are resolved, so a
    document cannot make a command read (and report on) a file elsewhere on the machine.
    """
    root = image_root(doc).resolve()
    name = img["file_name"]
    check_file_name(name, f"image {img['id']}: key 'file_name'")
    path = (root / name).resolve()
    if Path(name).is_absolute() or root not in path.parents:
        raise LrpError(f"image {img['id']}: file_name {name!r} points outside the image folder {root}")
    return path


def person_category_id(doc: dict) -> int:
    for c in doc["categories"]:
        if c.get("name") == "person":
            return c["id"]
    raise LrpError("the document has no 'person' category")


def derive(doc: dict) -> dict:
    """A deep copy to build the next stage from, so that the input stays untouched."""
    return copy.deepcopy(doc)


def add_history(doc: dict, command: str, args: dict) -> None:
    doc["lrp"]["history"].append(
        {
            "command": command,
            "args": {k: _jsonable(v) for k, v in args.items()},
            "version": __version__,
            "time": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def describe(doc: dict) -> str:
    """A short human label from the history: "original", "LR 1/4", "LR 1/4 > bicubic x4"."""
    from lrp.labels import history_label

    return history_label(doc["lrp"].get("history", []))


# --------------------------------------------------------------------------------------------
# Serialising (writing files is lrp.outputs)


def dumps(doc: dict) -> str:
    from lrp import jsonio

    # json.dumps(separators=(",", ":"), ensure_ascii=False), through orjson; NaN is refused.
    return jsonio.dumps(doc)


def iter_results(doc: dict) -> Iterable[tuple[str, list]]:
    for key in RESULT_KEYS:
        yield key, doc["lrp"].get(key) or []
