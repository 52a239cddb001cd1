"""`lrp merge`: join the shard documents of one run into the document an unsharded run gives.

Shards come from `--shard I/N` on an image step (lrp/shard.py). Merging checks that the shards
belong together (same input, same number of shards, same steps and settings since, one image
root) and that none is missing or repeated, then puts everything back in the unsharded order:

- images, annotations and results that came through the split: at the positions they had in
  the whole input (recorded in `lrp.shard.positions`);
- results made after the split: in the order the step that made them goes through the images.
  `detect` goes image by image in document order; `pose` image by image in the order in which
  its boxes (GT annotations or detections) first name them (lrp.pose.collect_people).

The merged document has no `lrp.shard`, and its history ends with a `merge` step naming the
shards. No torch here (except lrp.pose's box selection when poses were made after the split).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from lrp.errors import LrpError
from lrp.options import Output, Quiet
from lrp.shard import ITEM_KEYS, SPLIT, timeless

# Which results a step makes anew (rather than passing on); see _rank_by_producer for the order.
PRODUCERS = {"detect": "detections", "pose": "poses"}


# --------------------------------------------------------------------------------------------
# Checks


def _record(name: str, doc: dict) -> dict:
    record = doc["lrp"].get("shard")
    if not isinstance(record, dict):
        raise LrpError(f"{name}: not a shard document (no lrp.shard); shards come from a step run with --shard I/N")
    return record


def _settings(doc: dict) -> dict:
    """Everything that must be equal between shards of one run, besides the record itself."""
    top = {k: v for k, v in doc.items() if k not in ("images", "annotations", "lrp")}
    block = {k: v for k, v in doc["lrp"].items() if k not in ITEM_KEYS + ("shard", "history", "image_root")}
    record = {k: v for k, v in doc["lrp"]["shard"].items() if k not in ("index", "positions")}
    return {"document": top, "lrp": block, "shard": record}


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
            return f"{prefix}{key}"
    return prefix.rstrip(".")


def _history_difference(a: list, b: list) -> str:
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            what = _first_difference(x, y)
            return f"history step {k + 1} ({x.get('command')}): {what} differs"
    return f"history has {len(b)} steps, not {len(a)}"


def check_shards(shards: list[tuple[str, dict]]) -> None:
    """Refuse shards that do not make one whole run: one line naming the files at fault."""
    if not shards:
        raise LrpError("no shard documents given")
    name0, doc0 = shards[0]
    rec0 = _record(name0, doc0)
    settings0, history0 = _settings(doc0), timeless(doc0["lrp"]["history"])
    by_index: dict[int, str] = {}
    for name, doc in shards:
        rec = _record(name, doc)
        if rec.get("input") != rec0.get("input"):
            raise LrpError(f"{name}: a shard of a different input than {name0} (the documents they were split from differ)")
        if rec.get("count") != rec0.get("count"):
            raise LrpError(f"{name}: shard {rec.get('index')}/{rec.get('count')}, but {name0} is shard {rec0['index']}/{rec0['count']}")
        settings = _settings(doc)
        if settings != settings0:
            raise LrpError(f"{name}: made with other settings than {name0}: {_first_difference(settings0, settings)} differs")
        history = timeless(doc["lrp"]["history"])
        if history != history0:
            raise LrpError(f"{name}: made with other settings than {name0}: {_history_difference(history0, history)}")
        if doc["lrp"]["image_root"] != doc0["lrp"]["image_root"]:
            raise LrpError(
                f"{name}: its images are in {doc['lrp']['image_root']}, those of {name0} in {doc0['lrp']['image_root']}; "
                "run every shard with the same --out-dir (or from the same working directory)"
            )
        if rec["index"] in by_index:
            raise LrpError(f"{by_index[rec['index']]} and {name} are both shard {rec['index']}/{rec['count']} (overlapping shards)")
        by_index[rec["index"]] = name
    missing = [i for i in range(rec0["count"]) if i not in by_index]
    if missing:
        listed = ", ".join(f"{i}/{rec0['count']}" for i in missing)
        raise LrpError(f"shard{'s' if len(missing) > 1 else ''} {listed} missing: every shard of the run must be given")
    owner: dict[int, str] = {}
    for name, doc in shards:
        for img in doc["images"]:
            if img["id"] in owner:
                raise LrpError(f"image {img['id']} is in both {owner[img['id']]} and {name} (overlapping shards)")
            owner[img["id"]] = name


# --------------------------------------------------------------------------------------------
# Order


def _by_position(shards: list[tuple[str, dict]], key: str) -> list:
    """Items that came through the split, back at the positions they had in the whole input."""
    placed = []
    for name, doc in shards:
        where = doc["lrp"]["shard"]["positions"].get(key, {})
        items = doc["annotations"] if key == "annotations" else doc["lrp"][key]
        groups: dict[str, list] = defaultdict(list)
        for item in items:
            groups[str(item["image_id"])].append(item)
        for iid, group in groups.items():
            positions = where.get(iid, [])
            if len(positions) != len(group):
                raise LrpError(
                    f"{name}: image {iid} has {len(group)} {key}, {len(positions)} when the shard was split; "
                    f"a step since changed them that lrp merge does not know how to order"
                )
            placed += zip(positions, group)
    placed.sort(key=lambda pair: pair[0])
    return [item for _, item in placed]


def _by_image_rank(shards: list[tuple[str, dict]], key: str, rank: dict) -> list:
    """Results grouped image by image in `rank` order; within an image, as the shard has them."""
    ranked = []
    for _, doc in shards:
        for j, item in enumerate(doc["lrp"][key]):
            ranked.append(((rank.get(item["image_id"], len(rank)), item["image_id"], j), item))
    ranked.sort(key=lambda pair: pair[0])
    return [item for _, item in ranked]


def _rank_by_producer(merged: dict, step: dict) -> dict:
    """Image id -> the place the producing step gave its results (the unsharded run's order)."""
    rank: dict = {}
    if step["command"] == "pose":
        from lrp.pose import collect_people

        args = step.get("args", {})
        people, _ = collect_people(merged, args.get("boxes", "gt"), args.get("det_threshold", 0.0))
        for p in people:
            rank.setdefault(p["image_id"], len(rank))
    else:  # detect: every image in document order
        for img in merged["images"]:
            rank.setdefault(img["id"], len(rank))
    return rank


def _producer(history: list, since: int, key: str) -> dict | None:
    """The last step after the split that made `key` anew, if any."""
    made = [s for s in history[since:] if PRODUCERS.get(s.get("command")) == key]
    return made[-1] if made else None


# --------------------------------------------------------------------------------------------
# Merging


def merge_documents(shards: list[tuple[str, dict]]) -> dict:
    """[(name, shard document)] -> the document of the unsharded run (inputs untouched)."""
    from lrp.document import add_history

    check_shards(shards)
    shards = sorted(shards, key=lambda s: s[1]["lrp"]["shard"]["index"])
    _, doc0 = shards[0]
    record = doc0["lrp"]["shard"]
    position = {}
    for name, doc in shards:
        where = doc["lrp"]["shard"]["positions"]["images"]
        for img in doc["images"]:
            if str(img["id"]) not in where:
                raise LrpError(f"{name}: image {img['id']} was not in the shard when it was split")
            position[img["id"]] = where[str(img["id"])]

    merged = {k: v for k, v in doc0.items() if k not in ("images", "annotations", "lrp")}
    merged["images"] = sorted((img for _, doc in shards for img in doc["images"]), key=lambda img: position[img["id"]])
    merged["annotations"] = _by_position(shards, "annotations")
    merged["lrp"] = {k: v for k, v in doc0["lrp"].items() if k != "shard"}
    history = doc0["lrp"]["history"]
    for key in ("detections", "poses"):  # poses last: their order may follow the detections
        step = _producer(history, record["history_length"], key)
        merged["lrp"][key] = _by_position(shards, key) if step is None else _by_image_rank(shards, key, _rank_by_producer(merged, step))
    merged["lrp"]["history"] = _merged_history(shards, record["history_length"])
    add_history(
        merged,
        "merge",
        {"shards": record["count"], "split": SPLIT, "sharded_at": record.get("command"), "inputs": [name for name, _ in shards]},
    )
    return merged


def _merged_history(shards: list[tuple[str, dict]], since: int) -> list:
    """The shards' common history (check_shards made sure it agrees but for times), the timing
    of each step run after the split (`since`: ms per image on each shard's own images) joined
    over the shards; steps before the split ran once, on the whole input."""
    from lrp.timing import merge_timings

    history = [dict(step) for step in shards[0][1]["lrp"]["history"]]
    for i, step in enumerate(history[since:], start=since):
        timings = [doc["lrp"]["history"][i].get("timing") for _, doc in shards]
        if all(isinstance(t, dict) for t in timings):
            step["timing"] = merge_timings(timings)
    return history


# --------------------------------------------------------------------------------------------
# CLI

ShardDocs = Annotated[
    list[Path],
    typer.Argument(help="The shard documents of one run (from --shard 0/N ... --shard N-1/N), in any order.", show_default=False),
]


def command(shards: ShardDocs, output: Output = None, quiet: Quiet = False):
    """Join shard documents (made with --shard I/N) into the document an unsharded run gives.

    The merged document has the input's image order, the same ids, and the same annotations,
    detections and poses in the same order as one run over all images; its history ends with a
    merge step naming the shards. Every shard of a run must be given, once; shards of different
    inputs, of different settings, or with their images in different folders are refused.

    The merged document has one image root, so the shards of an image step (degrade, superres)
    must write their images to one folder: give every shard the same --out-dir, or run them from
    one working directory (the default lrp-runs/<command>-<hash>/ folder is the same for every
    shard of a run). Shards of a chain (degrade --shard I/N | superres | pose) are merged once, at
    the end; merge the documents of earlier stages too when a later command needs them
    (evaluate --size-from).

    Example:

        for i in 0 1 2 3; do lrp degrade --shard $i/4 --scale 0.25 --out-dir lr4 hr.json -o lr4.$i.json; done

        lrp merge lr4.0.json lr4.1.json lr4.2.json lr4.3.json -o lr4.json
    """
    from lrp.inputs import load_document
    from lrp.outputs import write_document

    docs = [(str(path), load_document(str(path))) for path in shards]
    merged = merge_documents(docs)
    if not quiet:
        print(f"lrp merge: {len(docs)} shards -> {len(merged['images'])} images", file=sys.stderr)
    write_document(merged, output)


# `lrp.merge(...)` calls merge_documents (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
