"""Time next to accuracy: each model step records how long its model and the whole step took.

A `Stopwatch` starts once the model is loaded (loading is a one-off, not a per-image cost, as
papers time inference); `with watch.model():` wraps each model call and accumulates model time,
synchronising CUDA on both sides so that the time is the device's, not the launch's. At the end
`watch.record(images, people)` gives the history entry's `timing` block:

    {"device": "cpu", "images": 6, "people": 14,
     "model_ms_per_image": ..., "total_ms_per_image": ...,
     "model_ms_per_person": ..., "total_ms_per_person": ...}

Model time is the wall time of the calls; on a CPU, the threads that decode and write images
meanwhile compete with the model, so it is what the model took inside the step, not alone.
`total` is the step's wall time from the loaded model to the last result (reading, cropping,
the model, writing PNGs). `images` are those the model ran on (an image reused from an earlier
run is not timed); `people` are the person boxes `pose` ran on, and for `superres` and `detect`
the non-crowd person annotations of those images, so that ms per person compare along a chain.
Per-person figures are None where there is nobody. Timing is not part of the run hash (it differs
on every run; lrp.outputs.run_hash leaves it out), so it never breaks resume. No torch here unless the
device is CUDA.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext


class Stopwatch:
    def __init__(self, device="cpu"):
        self.device = str(device)
        self.model_s = 0.0
        self.start = time.perf_counter()

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    @contextmanager
    def model(self):
        """Time one model call (added to the model time)."""
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.model_s += time.perf_counter() - t0

    def record(self, images: int, people: int | None = None) -> dict:
        total_s = time.perf_counter() - self.start

        def per(seconds: float, n: int | None):
            return round(1000.0 * seconds / n, 3) if n else None

        return {
            "device": self.device,
            "images": images,
            "people": people,
            "model_ms_per_image": per(self.model_s, images),
            "total_ms_per_image": per(total_s, images),
            "model_ms_per_person": per(self.model_s, people),
            "total_ms_per_person": per(total_s, people),
        }


def timed(watch: Stopwatch | None):
    """`with timed(watch):` around a model call; nothing when no stopwatch is given."""
    return watch.model() if watch is not None else nullcontext()


def module_device(net) -> str:
    """The device a torch module's parameters are on ("cpu" for a module without any)."""
    try:
        return str(next(iter(net.parameters())).device)
    except (StopIteration, AttributeError, TypeError):
        return "cpu"


def gt_people(doc: dict, image_ids) -> int:
    """Non-crowd person annotations in the images `image_ids` (the people of an image step)."""
    ids = set(image_ids)
    person = {c["id"] for c in doc["categories"] if c.get("name") == "person"}
    return sum(1 for a in doc["annotations"] if a["image_id"] in ids and a.get("category_id") in person and not a.get("iscrowd"))


def record_timing(doc: dict, watch: Stopwatch, images: int, people: int | None) -> None:
    """Put the step's timing into its history entry (the last one)."""
    doc["lrp"]["history"][-1]["timing"] = watch.record(images, people)


def merge_timings(timings: list[dict]) -> dict:
    """The timing of one step run as shards (lrp merge): images and people added up, ms per
    image and per person averaged over all of them (the work of every shard, not wall-clock)."""

    def total(key: str):
        values = [t.get(key) for t in timings]
        return None if any(v is None for v in values) else sum(values)

    out = {"device": ", ".join(dict.fromkeys(str(t.get("device")) for t in timings)), "images": total("images"), "people": total("people")}
    for key, count in (("model_ms_per_image", "images"), ("total_ms_per_image", "images"),
                       ("model_ms_per_person", "people"), ("total_ms_per_person", "people")):
        pairs = [(t.get(key), t.get(count)) for t in timings if t.get(count)]
        n = sum(c for _, c in pairs)
        out[key] = round(sum(v * c for v, c in pairs) / n, 3) if n and all(v is not None for v, _ in pairs) else None
    out["shards"] = len(timings)
    return out


TIMING_COLUMNS = ("device", "model_ms_per_image", "total_ms_per_image", "model_ms_per_person", "total_ms_per_person")


def timing_rows(history: list[dict]) -> list[tuple[str, dict]]:
    """(command, timing) of each timed step of a history, in order (for `evaluate --timing`)."""
    return [(h.get("command", "?"), h["timing"]) for h in history if isinstance(h.get("timing"), dict)]


# --------------------------------------------------------------------------------------------
# `evaluate --timing`: time as columns beside AP (STAR-Pose Table 1 style)

SUMMED = ("model_ms_per_image", "total_ms_per_image", "model_ms_per_person", "total_ms_per_person")
COLUMN_TITLES = {"model_ms_per_image": "model ms/img", "total_ms_per_image": "total ms/img",
                 "model_ms_per_person": "model ms/person", "total_ms_per_person": "total ms/person"}


def chain_timing(history: list[dict]) -> dict | None:
    """The timed steps of a history added up (SR + detector + pose: the time of the whole chain
    per image and per person), with the steps and devices they ran on; None if none was timed.
    A sum is None when one of its steps has no value (nobody to divide by)."""
    rows = timing_rows(history)
    if not rows:
        return None
    out = {"steps": " + ".join(c for c, _ in rows), "device": ", ".join(dict.fromkeys(str(t.get("device")) for _, t in rows))}
    for key in SUMMED:
        values = [t.get(key) for _, t in rows]
        out[key] = None if any(v is None for v in values) else round(sum(values), 3)
    return out


def _ms(value) -> str | None:
    """Milliseconds to one decimal in tables, as papers print them (csv and json keep all)."""
    return None if value is None else f"{value:.1f}"


def add_timing(tables: list, columns: list[str], records: list[dict], json_docs: list[dict], histories: dict[str, list]) -> None:
    """Extend evaluate's outputs in place: every AP table gets the chain's time columns, a
    per-step table follows, csv records get `timing.*` fields and json documents a `timing` block.
    `histories`: row label -> the document's history."""
    from lrp.tables import Table

    chains = {label: chain_timing(h) for label, h in histories.items()}
    for t in tables:
        t.columns += ["device", *(COLUMN_TITLES[k] for k in SUMMED)]
        for row in t.rows:
            chain = chains.get(row[0]) or {}
            row += [chain.get("device", "n/a"), *(_ms(chain.get(k)) for k in SUMMED)]
    steps = Table("Time per step (ms; model: the network calls, total: the whole step)", ["document", "step", "device", "images", "people", *(COLUMN_TITLES[k] for k in SUMMED)], text_columns=3)
    for label, history in histories.items():
        for command, timing in timing_rows(history):
            steps.rows.append([label, command, str(timing.get("device")), timing.get("images"), timing.get("people"), *(_ms(timing.get(k)) for k in SUMMED)])
    tables.append(steps)
    columns += ["timing.steps", "timing.device", *(f"timing.{k}" for k in SUMMED)]
    for rec in records:
        for k, v in (chains.get(rec["label"]) or {}).items():
            rec[f"timing.{k}"] = v
    for doc in json_docs:
        doc["timing"] = {"chain": chains.get(doc["label"]), "steps": [dict(t, command=c) for c, t in timing_rows(histories.get(doc["label"], []))]}
