"""`lrp displacement`: how far each heatmap peak lies from the ground truth (CAL Fig. 5).

CAL plots the displacement from the coarse prediction (the heatmap argmax) to the GT keypoint in
heatmap pixels: at a low input size a heatmap pixel covers many image pixels, which is the
quantisation error that offset decoding removes. Poses must come from `lrp pose
--record-argmax`, which stores the peak (`lrp_argmax`, image frame) and the image pixels per
heatmap cell (`lrp_cell`) beside the decoded keypoints. Each GT person with keypoints is matched
to a pose as COCOeval matches (people.match_poses), kept when that OKS reaches --min-oks, and
every visible (v = 2) GT keypoint of it counts once. No torch here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from lrp.errors import LrpError, UsageError
from lrp.evaluate import Format, Labels, TableOutput, document_labels, load_documents
from lrp.options import Quiet

# Bin edges in heatmap cells: below half a cell the argmax is the right cell.
EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf)


def bin_names(edges=EDGES) -> list[str]:
    return [f"[{a:g}, {b:g})" if math.isfinite(b) else f">= {a:g}" for a, b in zip(edges, edges[1:])]


def displacements(doc: dict, name: str, min_oks: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, decoded) distances to the GT in heatmap cells, one per visible GT keypoint of
    each matched person."""
    from lrp.people import match_poses

    poses = doc["lrp"].get("poses") or []
    if not poses:
        raise LrpError(f"{name}: no lrp.poses to measure (run lrp pose --record-argmax first)")
    missing = next((i for i, p in enumerate(poses) if "lrp_argmax" not in p or "lrp_cell" not in p), None)
    if missing is not None:
        raise LrpError(f"{name}: pose {missing} (image {poses[missing]['image_id']}) has no lrp_argmax: run lrp pose --record-argmax")
    anns = {a["id"]: a for a in doc["annotations"]}
    argmax, decoded = [], []
    for ann_id, match in match_poses(doc).items():
        if match.value < min_oks:
            continue
        g = np.asarray(anns[ann_id]["keypoints"], dtype=float).reshape(-1, 3)
        pose = poses[match.index]
        cell = float(pose["lrp_cell"])
        if not cell > 0:
            raise LrpError(f"{name}: pose {match.index} (image {pose['image_id']}): lrp_cell must be positive, got {cell!r}")
        peak = np.asarray(pose["lrp_argmax"], dtype=float).reshape(-1, 2)
        kps = np.asarray(pose["keypoints"], dtype=float).reshape(-1, 3)[:, :2]
        if len(peak) != len(g):
            raise LrpError(f"{name}: pose {match.index} (image {pose['image_id']}): lrp_argmax has {len(peak)} points, the GT {len(g)}")
        visible = g[:, 2] == 2
        argmax.append(np.hypot(*(peak[visible] - g[visible, :2]).T) / cell)
        decoded.append(np.hypot(*(kps[visible] - g[visible, :2]).T) / cell)
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return join(argmax), join(decoded)


def summarise(label: str, argmax: np.ndarray, decoded: np.ndarray, edges=EDGES) -> dict:
    counts = np.histogram(argmax, bins=np.asarray(edges))[0] if len(argmax) else np.zeros(len(edges) - 1, int)
    mean = lambda v: float(v.mean()) if len(v) else None  # noqa: E731
    return {
        "label": label,
        "keypoints": int(len(argmax)),
        "argmax_mean": mean(argmax),
        "argmax_median": float(np.median(argmax)) if len(argmax) else None,
        "decoded_mean": mean(decoded),
        "share": {b: (int(c) / len(argmax) if len(argmax) else None) for b, c in zip(bin_names(edges), counts)},
    }


def plot(rows: list[dict], path: Path) -> None:
    """Grouped bars: the share of keypoints in each displacement bin, one colour per document."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lrp.outputs import atomic_write_bytes

    names = bin_names()
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    width = 0.8 / max(1, len(rows))
    for j, r in enumerate(rows):
        shares = [r["share"][b] or 0.0 for b in names]
        ax.bar(x - 0.4 + width * (j + 0.5), shares, width, label=f"{r['label']} (n={r['keypoints']})")
    ax.set_xticks(x, names)
    ax.set_xlabel("argmax to ground-truth distance (heatmap pixels)")
    ax.set_ylabel("share of visible GT keypoints")
    ax.set_title("Displacement of the heatmap peak from the ground truth (CAL Fig. 5)", fontsize=10)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(help="Documents with poses from lrp pose --record-argmax, one row each; '-' or nothing reads stdin.", show_default=False),
    ] = None,
    label: Labels = None,
    min_oks: Annotated[float, typer.Option("--min-oks", help="Keep GT people whose matched pose reaches this OKS.")] = 0.5,
    plot_path: Annotated[
        Optional[Path], typer.Option("--plot", help="Also draw the histogram as a PNG (atomically).", show_default=False)
    ] = None,
    fmt: Format = "table",
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """Histogram of the heatmap-argmax-to-GT displacement in heatmap pixels (CAL Fig. 5).

    For every visible GT keypoint of each person matched to a pose (COCOeval's greedy matching,
    OKS >= --min-oks): the distance from the recorded heatmap peak (lrp pose --record-argmax) to
    the GT, over the image pixels per heatmap cell, binned; and the mean distance of the decoded
    keypoint, which shows what the codec's sub-pixel step (or offset) recovers.

        lrp pose --model posenet --input-size 257x257 --record-argmax gt.json -o p257.json
        lrp displacement p257.json p513.json --plot fig5.png --format markdown
    """
    from lrp.tables import Table, cell_text, check_format, emit

    check_format(fmt)
    if not 0.0 <= min_oks <= 1.0:
        raise UsageError(f"--min-oks must be within [0, 1] (got {min_oks:g})")
    named = load_documents(documents)
    labels = document_labels(named, label, False)
    rows = [summarise(lbl, *displacements(doc, name, min_oks)) for (name, doc), lbl in zip(named, labels)]
    names = bin_names()
    table = Table(
        "Heatmap argmax to GT (heatmap pixels; share of visible GT keypoints per bin)",
        ["run", "keypoints", "argmax mean", "argmax median", "decoded mean", *names],
        [
            [r["label"], r["keypoints"], cell_text(r["argmax_mean"]), cell_text(r["argmax_median"]), cell_text(r["decoded_mean"]),
             *("n/a" if r["share"][b] is None else f"{100 * r['share'][b]:.1f}%" for b in names)]
            for r in rows
        ],
    )
    records = [{**{k: v for k, v in r.items() if k != "share"}, **r["share"]} for r in rows]
    if plot_path is not None:
        plot(rows, plot_path)
    emit(
        [table], fmt, output,
        csv_columns=["label", "keypoints", "argmax_mean", "argmax_median", "decoded_mean", *names], records=records,
        json_data={"unit": "heatmap pixels", "min_oks": min_oks, "bins": names, "runs": rows},
    )
