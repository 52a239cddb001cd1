"""The stream document (schema `lrp/1`): reading, checking, provenance and atomic writing.

A document is a plain COCO dataset dict plus an `lrp` block (see DESIGN.md section 1). We keep
it as plain dicts on purpose: whatever pycocotools, jq or a user script can read, our code reads
the same way. No torch here.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable

from lrp import __version__
from lrp.errors import LrpError, UsageError

SCHEMA = "lrp/1"
IDENTITY = [1.0, 1.0, 0.0, 0.0]
RESULT_KEYS = ("detections", "poses")


# --------------------------------------------------------------------------------------------
# Reading


def parse_json(text: str | bytes, name: str) -> Any:
    from lrp import jsonio

    try:
        return jsonio.loads(text)  # json.loads' value, through orjson where that is the same
    except json.JSONDecodeError as e:
        raise LrpError(f"{name}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise LrpError(f"{name}: not valid JSON: not UTF-8 text") from None


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


def load_document(
    source: str | None,
    *,
    images: str | os.PathLike | None = None,
    stdin: IO | None = None,
    allow_sample: bool = False,
    quiet: bool = False,
) -> dict:
    """Read a document from a path, `-`/None (stdin) or, on a terminal with no input, the sample.

    A plain COCO file (no `lrp` block) is adopted as the first stage of a pipeline: it needs
    `images` (the folder its `file_name`s are relative to).
    """
    stdin = stdin if stdin is not None else sys.stdin
    if source in (None, "-"):
        if source is None and _is_terminal(stdin):
            if not allow_sample:
                raise UsageError("no input: give a document path, '-' or pipe one in")
            from lrp.sample import sample_document

            if not quiet:
                print("lrp: no input given: using the embedded sample dataset", file=sys.stderr)
            return sample_document()
        name = "<stdin>"
        text = stdin.read()
        if not text.strip():
            raise LrpError("<stdin>: empty input, expected a COCO/lrp JSON document")
        data = parse_json(text, name)
    else:
        name = source
        data = read_json_file(source, name)
    return adopt(data, name, images=images)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def adopt(data: Any, name: str, *, images: str | os.PathLike | None = None) -> dict:
    """Check a parsed JSON value and give it an `lrp` block if it is a plain COCO dataset."""
    check_coco(data, name)
    check_document(data, name)
    doc = data
    if "lrp" not in doc or not isinstance(doc.get("lrp"), dict):
        if images is None:
            raise UsageError(f"{name}: a plain COCO file needs --images DIR (the folder of its file_names)")
        doc["lrp"] = {
            "schema": SCHEMA,
            "image_root": str(Path(images).resolve()),
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
        if not isinstance(block.get("image_root"), str):
            raise LrpError(f"{name}: key 'lrp.image_root' is missing")
        block.setdefault("history", [])
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
    """Ids unique, references resolve, sizes sane. Raises LrpError naming the culprit."""
    image_ids: set = set()
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict):
            raise LrpError(f"{name}: images[{i}] is not an object")
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise LrpError(f"{name}: images[{i}] has no '{key}'")
        iid = img["id"]
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise LrpError(f"{name}: image id {iid!r} is not an integer")
        if iid in image_ids:
            raise LrpError(f"{name}: duplicate image id {iid}")
        image_ids.add(iid)
        if not (isinstance(img["width"], int) and isinstance(img["height"], int)) or img["width"] <= 0 or img["height"] <= 0:
            raise LrpError(f"{name}: image {iid}: width/height must be positive integers")
    cat_ids = set()
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c:
            raise LrpError(f"{name}: a category has no 'id'")
        if c["id"] in cat_ids:
            raise LrpError(f"{name}: duplicate category id {c['id']}")
        cat_ids.add(c["id"])
    ann_ids: set = set()
    for i, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            raise LrpError(f"{name}: annotations[{i}] is not an object")
        aid = ann.get("id")
        if aid is None:
            raise LrpError(f"{name}: annotations[{i}] has no 'id'")
        if aid in ann_ids:
            raise LrpError(f"{name}: duplicate annotation id {aid}")
        ann_ids.add(aid)
        if ann.get("image_id") not in image_ids:
            raise LrpError(f"{name}: annotation {aid} refers to unknown image id {ann.get('image_id')!r}")
        if ann.get("category_id") not in cat_ids:
            raise LrpError(f"{name}: annotation {aid} refers to unknown category id {ann.get('category_id')!r}")
        bbox = ann.get("bbox")
        if bbox is not None and (not isinstance(bbox, list) or len(bbox) != 4):
            raise LrpError(f"{name}: annotation {aid}: 'bbox' must be [x, y, w, h]")
    block = doc.get("lrp")
    if isinstance(block, dict):
        for key in RESULT_KEYS:
            results = block.get(key) or []
            if not isinstance(results, list):
                raise LrpError(f"{name}: 'lrp.{key}' is not a list")
            check_results(results, image_ids, f"{name}: lrp.{key}")


def check_results(results: list, image_ids: set, where: str) -> None:
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise LrpError(f"{where}[{i}] is not an object")
        if r.get("image_id") not in image_ids:
            raise LrpError(f"{where}[{i}] refers to unknown image id {r.get('image_id')!r}")
        if "score" not in r:
            raise LrpError(f"{where}[{i}] (image {r['image_id']}) has no 'score'")


def load_results(path: str, doc: dict) -> list:
    """A COCO results list (as `loadRes` takes) checked against the images of `doc`."""
    data = read_json_file(path)
    if not isinstance(data, list):
        raise LrpError(f"{path}: not a COCO results list")
    check_results(data, {img["id"] for img in doc["images"]}, path)
    return data


# --------------------------------------------------------------------------------------------
# Small accessors


def images_by_id(doc: dict) -> dict[int, dict]:
    return {img["id"]: img for img in doc["images"]}


def image_root(doc: dict) -> Path:
    return Path(doc["lrp"]["image_root"])


def image_path(doc: dict, img: dict) -> Path:
    return image_root(doc) / img["file_name"]


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
# Writing


def dumps(doc: dict) -> str:
    from lrp import jsonio

    # json.dumps(separators=(",", ":"), ensure_ascii=False), through orjson; NaN is refused.
    return jsonio.dumps(doc)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_document(doc: dict, output: str | os.PathLike | None, stdout: IO | None = None) -> None:
    text = dumps(doc)
    if output is None or str(output) == "-":
        out = stdout if stdout is not None else sys.stdout
        out.write(text)
        out.write("\n")
        out.flush()
    else:
        atomic_write_text(output, text + "\n")


def write_result(command: str, output, produce) -> None:
    """Write the document that `produce()` returns.

    With `--keep-going` failures (PartialFailure), list each failure on stderr, still write the
    document of the images that succeeded, then let the failure end the command with exit 1.
    """
    from lrp.errors import PartialFailure

    try:
        doc = produce()
    except PartialFailure as e:
        for line in e.failures:
            print(f"lrp {command}: failed: {line}", file=sys.stderr)
        write_document(e.doc, output)
        raise
    write_document(doc, output)


def iter_results(doc: dict) -> Iterable[tuple[str, list]]:
    for key in RESULT_KEYS:
        yield key, doc["lrp"].get(key) or []
