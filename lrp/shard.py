"""`--shard I/N`: run an image step on one part of a document, to spread a run over machines.

The split is by image id: image `id` belongs to shard `sha256(str(id)) mod N`, so it is the same
on every machine, run and Python version (Python's `hash()` is salted per process) and does not
depend on the order of the images or on how the ids are spaced. A shard document is an ordinary
document of its images with their annotations and results, plus an `lrp.shard` record:

    {"index": I, "count": N, "input": sha256 of the whole input document, "command": "degrade",
     "positions": {"images": {id: position}, "annotations": {id: [positions]}, ...}}

`positions` are the places the shard's images, annotations and results had in the whole input,
so that `lrp merge` (lrp/merge.py) can put them back in the order an unsharded run gives. Steps
run on a shard document without `--shard` carry the record along, so a whole chain runs per
shard and is merged once at the end.

No torch here.
"""

from __future__ import annotations

import hashlib
import json
import re

from lrp.errors import UsageError

SPLIT = "sha256(image id) mod N"
ITEM_KEYS = ("annotations", "detections", "poses")  # what moves with its image
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' (0 <= I < N) -> (I, N); anything else is a usage error."""
    m = _SPEC.match(text or "")
    if not m:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4 (shards are numbered from 0)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise UsageError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return i, n


def shard_of(image_id: int, n: int) -> int:
    """The shard of an image id among `n`: stable everywhere (no Python hash())."""
    digest = hashlib.sha256(str(int(image_id)).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % n


def document_hash(doc: dict) -> str:
    """sha256 of the document's canonical JSON (sorted keys): equal documents, equal hashes."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_document(doc: dict, i: int, n: int, command: str = "") -> dict:
    """The images of shard `i` of `n` with their annotations and results, and the record that
    `lrp merge` checks. `doc` is untouched. A document that already is shard i/N is returned as
    it is (so a script may pass --shard to every step of a chain); another shard is refused."""
    found = doc["lrp"].get("shard")
    if found is not None:
        if (found.get("index"), found.get("count")) == (i, n):
            return doc
        raise UsageError(
            f"--shard {i}/{n}: the input is already shard {found.get('index')}/{found.get('count')}; "
            "merge the shards first (lrp merge) or shard the whole document"
        )
    keep = {img["id"] for img in doc["images"] if shard_of(img["id"], n) == i}
    positions: dict = {"images": {}}
    out = {k: v for k, v in doc.items() if k not in ("images", "annotations", "lrp")}
    out["images"] = []
    for pos, img in enumerate(doc["images"]):
        if img["id"] in keep:
            out["images"].append(img)
            positions["images"][str(img["id"])] = pos
    out["lrp"] = {k: v for k, v in doc["lrp"].items() if k not in ITEM_KEYS}
    for key in ITEM_KEYS:
        items = doc["annotations"] if key == "annotations" else doc["lrp"].get(key) or []
        kept, where = [], {}
        for pos, item in enumerate(items):
            if item["image_id"] in keep:
                kept.append(item)
                where.setdefault(str(item["image_id"]), []).append(pos)
        positions[key] = where
        if key == "annotations":
            out["annotations"] = kept
        else:
            out["lrp"][key] = kept
    out["lrp"]["shard"] = {
        "index": i,
        "count": n,
        "split": SPLIT,
        "input": document_hash(doc),
        "command": command,
        "history_length": len(doc["lrp"].get("history", [])),
        "positions": positions,
    }
    return out


def apply_shard(doc: dict, spec: str | None, command: str) -> dict:
    """The command-line hook: `doc = apply_shard(doc, shard, "degrade")` right after loading."""
    if spec is None:
        return doc
    i, n = parse_shard(spec)
    return shard_document(doc, i, n, command)


def run_identity(doc: dict) -> dict:
    """What a run folder's hash covers (lrp.outputs.run_hash).

    An ordinary document stands for itself. Every shard of one run must share a run folder (the
    merged document has one image root), so a shard stands for what all its sibling shards have
    in common: the whole input's hash, the number of shards, the image root and the steps run
    since (without their times).
    """
    record = doc.get("lrp", {}).get("shard") if isinstance(doc.get("lrp"), dict) else None
    if record is None:
        return doc
    return {
        "shard_of": record["input"],
        "count": record["count"],
        "image_root": doc["lrp"].get("image_root"),
        "history": timeless(doc["lrp"].get("history", [])),
    }


def timeless(history: list) -> list:
    """The history without its times: what must agree between shards of one run."""
    return [{k: v for k, v in step.items() if k not in ("time", "timing")} for step in history]
