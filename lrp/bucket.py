"""`lrp bucket`: results by person size (the paper's 24 area subgroups, Figures 1-3).

People are grouped by their segmentation area in one frame (the low-resolution one), with
half-open ranges (lo, hi]. Buckets are pycocotools area ranges with its own "ignore" semantics:
one COCOeval per document and task gets every bucket as `params.areaRng`, and each bucket's AP
and AR are read from `eval['precision']` / `eval['recall']` exactly as `summarize` reads them.
No annotation is ever deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp import cocoeval as ce
from lrp.errors import LrpError, UsageError
from lrp.evaluate import Bootstrap, Engine, Format, Labels, Oracle, Seed, TableOutput, check_engine
from lrp.options import Quiet

BUCKET_TASKS = ("bbox", "keypoints")
BUCKET_METRICS = ("AP", "AR")
TASK_SHORT = {"bbox": "detection", "keypoints": "keypoint"}
DEFAULT_COUNT = 24
# 500 px^2 at 1/2 scale and 125 px^2 at 1/4 scale: 2000 px^2 per unit of (linear scale)^2.
WIDTH_AT_SCALE_1 = 2000.0


# --------------------------------------------------------------------------------------------
# Edges


def paper_scale(frame_doc: dict) -> float:
    """The frame's linear scale, snapped to a simple fraction when within 2% (107/427 is 1/4)."""
    from fractions import Fraction

    scale = ce.frame_scale(frame_doc)
    nice = float(Fraction(scale).limit_denominator(64))
    return nice if abs(nice - scale) <= 0.02 * scale else scale


def default_edges(scale: float, count: int = DEFAULT_COUNT) -> list[float]:
    """The paper's groups: `count` buckets of 2000*scale^2 px^2 (500 at 1/2, 125 at 1/4)."""
    if not scale > 0:
        raise UsageError(f"--scale must be positive (got {scale:g})")
    width = WIDTH_AT_SCALE_1 * scale * scale
    return [i * width for i in range(count + 1)]


def parse_edges(text: str) -> list[float]:
    try:
        edges = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--edges {text!r}: expected comma-separated numbers, e.g. 0,500,1000") from None
    if len(edges) < 2:
        raise UsageError(f"--edges {text!r}: give at least two edges (one bucket)")
    if any(not math.isfinite(e) or e < 0 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise UsageError(f"--edges {text!r}: edges must be finite, >= 0 and strictly increasing")
    return edges


def area_ranges(edges: list[float]) -> list[list[float]]:
    """(lo, hi] as pycocotools ranges: it ignores a person when area < lo or area > hi."""
    return [[math.nextafter(lo, math.inf), hi] for lo, hi in zip(edges, edges[1:])]


def people_counts(frame_doc: dict, edges: list[float]) -> tuple[list[int], list[int]]:
    """Non-crowd people per bucket in the frame, and those of them with keypoints."""
    from lrp.document import person_category_id

    cat = person_category_id(frame_doc)
    people = [0] * (len(edges) - 1)
    with_kp = [0] * (len(edges) - 1)
    for a in frame_doc["annotations"]:
        if a.get("category_id") != cat or a.get("iscrowd"):
            continue
        for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
            if lo < a["area"] <= hi:
                people[i] += 1
                with_kp[i] += a.get("num_keypoints", 0) > 0
                break
    return people, with_kp


# --------------------------------------------------------------------------------------------
# The library function


@dataclass
class BucketRun:
    name: str
    label: str
    # task -> metric -> one value per bucket (pycocotools' -1 where the bucket has no people)
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # task -> metric -> array (replicates x buckets) of bootstrap values (NaN where undefined)
    samples: dict = field(default_factory=dict)


def bucket_document(
    doc: dict,
    edges: list[float],
    *,
    name: str = "document",
    label: str | None = None,
    frame_doc: dict | None = None,
    frame_name: str | None = None,
    oracle: bool = False,
    draws=None,
    engine: str = ce.DEFAULT_ENGINE,
) -> BucketRun:
    """Detection and keypoint AP/AR per bucket of size-frame area for one document."""
    from lrp.labels import history_label

    tasks = [t for t in (ce.oracle_tasks(doc) if oracle else ce.results_tasks(doc)) if t in BUCKET_TASKS]
    if not tasks:
        raise LrpError(f"{name} has no lrp.detections or lrp.poses to evaluate (use --oracle for GT as predictions)")
    sizes = ce.size_frame(doc, frame_doc, name, frame_name or "frame") if frame_doc is not None else None
    ranges = area_ranges(edges)
    labels = [f"({lo:g}, {hi:g}]" for lo, hi in zip(edges, edges[1:])]
    run = BucketRun(name=name, label=label or history_label(doc["lrp"].get("history", [])))
    coco_gt = ce.gt_coco(doc, name, engine)
    for task in tasks:
        E = ce.run_cocoeval(
            doc, task, name=name, area_ranges=ranges, area_labels=labels, sizes=sizes, oracle=oracle, coco_gt=coco_gt,
            keep_per_image=draws is not None,
        )
        run.metrics[task] = per_bucket(E)
        if draws is not None:
            run.samples[task] = bootstrap_per_bucket(E, draws)
    return run


def per_bucket(E, eval_result=None) -> dict[str, list[float]]:
    max_dets = ce.main_max_dets(E)
    n = len(E.params.areaRng)
    return {
        metric: [
            ce.summarize_range(E, ap=metric == "AP", area_index=i, max_dets=max_dets, eval_result=eval_result)
            for i in range(n)
        ]
        for metric in BUCKET_METRICS
    }


def bootstrap_per_bucket(E, draws):
    import numpy as np

    out = {m: np.full((len(draws), len(E.params.areaRng)), np.nan) for m in BUCKET_METRICS}
    for r, result in enumerate(ce.bootstrap_evals(E, len(draws), None, draws=draws, max_dets=ce.main_max_dets(E))):
        for metric, values in per_bucket(E, result).items():
            out[metric][r] = [v if v >= 0 else np.nan for v in values]
    return out


def percent_change(run: float, base: float) -> float | None:
    """(run - base) / base * 100; None where either is undefined or the baseline is 0."""
    if run is None or base is None or run < 0 or base <= 0:
        return None
    return (run - base) / base * 100.0


def interval(samples, level: float = 0.95):
    """Percentile interval per column, ignoring undefined replicates; None where all are."""
    import numpy as np

    alpha = (1 - level) / 2
    out = []
    for col in samples.T:
        col = col[np.isfinite(col)]
        out.append(None if len(col) == 0 else (float(np.quantile(col, alpha)), float(np.quantile(col, 1 - alpha))))
    return out


def change_samples(run_samples, base_samples):
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        change = (run_samples - base_samples) / base_samples * 100.0
    change[~(base_samples > 0)] = np.nan
    return change


# --------------------------------------------------------------------------------------------
# Results in one structure for every output


@dataclass
class BucketReport:
    edges: list[float]
    people: list[int]
    people_kp: list[int]
    frame: str
    frame_file: str
    runs: list[BucketRun]
    baseline: BucketRun | None
    bootstrap: dict | None = None

    def tasks(self) -> list[str]:
        return [t for t in BUCKET_TASKS if any(t in r.metrics for r in self.runs)]

    def change(self, run: BucketRun, task: str, metric: str) -> list[float | None] | None:
        if self.baseline is None or run is self.baseline or task not in run.metrics or task not in self.baseline.metrics:
            return None
        base = self.baseline.metrics[task][metric]
        return [percent_change(r, b) for r, b in zip(run.metrics[task][metric], base)]

    def value_interval(self, run: BucketRun, task: str, metric: str):
        if task not in run.samples:
            return None
        return interval(run.samples[task][metric])

    def change_interval(self, run: BucketRun, task: str, metric: str):
        if self.change(run, task, metric) is None or task not in run.samples or task not in self.baseline.samples:
            return None
        return interval(change_samples(run.samples[task][metric], self.baseline.samples[task][metric]))


def range_text(lo: float, hi: float) -> str:
    """The paper's way: 1-500, 501-1000 for integer edges; (lo, hi] otherwise."""
    if float(lo).is_integer() and float(hi).is_integer():
        return f"{int(lo) + 1}-{int(hi)}"
    return f"({lo:g}, {hi:g}]"


def bucket_rows(counts: list[int]) -> list[tuple[int, int]]:
    """(first, last) bucket index of each table row: a bucket with people is a row of its own,
    and a run of two or more empty buckets shares one, so that the table stays readable."""
    rows: list[tuple[int, int]] = []
    for i, n in enumerate(counts):
        if n == 0 and rows and counts[rows[-1][1]] == 0:
            rows[-1] = (rows[-1][0], i)
        else:
            rows.append((i, i))
    return rows


def build_tables(report: BucketReport):
    from lrp.tables import Table, cell_text, percent_text

    tables = []
    for task in report.tasks():
        counts = report.people_kp if task == "keypoints" else report.people
        runs = [r for r in report.runs if task in r.metrics]
        for metric in BUCKET_METRICS:
            columns = ["#", "area", "people"]
            for r in runs:
                columns.append(r.label)
                if report.change(r, task, metric) is not None:
                    columns.append(f"Δ% {r.label}")
            t = Table(f"{TASK_SHORT[task]} {metric} by area in {report.frame}", columns, text_columns=2)
            for first, last in bucket_rows(counts):
                if first != last:  # a run of empty buckets: one row (CSV and JSON keep every bucket)
                    label = f"{first + 1}-{last + 1}"
                    area = range_text(report.edges[first], report.edges[last + 1])
                    t.rows.append([label, area, "0", *["no people"] * (len(columns) - 3)])
                    continue
                i = first
                row = [str(i + 1), range_text(report.edges[i], report.edges[i + 1]), str(counts[i])]
                for r in runs:
                    value = ce.defined(r.metrics[task][metric][i])
                    ci = report.value_interval(r, task, metric)
                    text = cell_text(value, none_text="no people")
                    if value is not None and ci and ci[i]:
                        text += f" [{ci[i][0]:.3f}, {ci[i][1]:.3f}]"
                    row.append(text)
                    change = report.change(r, task, metric)
                    if change is not None:
                        cci = report.change_interval(r, task, metric)
                        text = "no people" if counts[i] == 0 else percent_text(change[i])
                        if change[i] is not None and cci and cci[i]:
                            text += f" [{cci[i][0]:+.1f}, {cci[i][1]:+.1f}]"
                        row.append(text)
                t.rows.append(row)
            tables.append(t)
    return tables


def _values(values):
    return [ce.defined(v) for v in values]


def json_data(report: BucketReport) -> dict:
    docs = []
    for r in report.runs:
        entry = {
            "label": r.label,
            "file": r.name,
            "baseline": r is report.baseline,
            # Per bucket, in the order of "buckets"; null where a bucket has no people.
            "metrics": {t: {m: _values(v) for m, v in ms.items()} for t, ms in r.metrics.items()},
        }
        change = {
            t: {m: report.change(r, t, m) for m in BUCKET_METRICS} for t in r.metrics if report.change(r, t, BUCKET_METRICS[0]) is not None
        }
        if change:
            entry["change_pct"] = change
        if r.samples:
            entry["intervals"] = {t: {m: report.value_interval(r, t, m) for m in BUCKET_METRICS} for t in r.samples}
            if change:
                entry["change_intervals"] = {t: {m: report.change_interval(r, t, m) for m in BUCKET_METRICS} for t in change}
        docs.append(entry)
    return {
        "frame": report.frame,
        "frame_file": report.frame_file,
        "edges": report.edges,
        "buckets": [
            {"index": i + 1, "area": [lo, hi], "people": report.people[i], "people_with_keypoints": report.people_kp[i]}
            for i, (lo, hi) in enumerate(zip(report.edges, report.edges[1:]))
        ],
        "baseline": report.baseline.label if report.baseline else None,
        "bootstrap": report.bootstrap,
        "documents": docs,
    }


def csv_records(report: BucketReport) -> tuple[list[str], list[dict]]:
    """One row per (bucket, document): tidy, for pandas and spreadsheets."""
    columns = ["bucket", "area_lo", "area_hi", "people", "people_with_keypoints", "label", "file", "baseline"]
    records = []
    for r in report.runs:
        for i, (lo, hi) in enumerate(zip(report.edges, report.edges[1:])):
            rec = {
                "bucket": i + 1, "area_lo": lo, "area_hi": hi, "people": report.people[i],
                "people_with_keypoints": report.people_kp[i], "label": r.label, "file": r.name,
                "baseline": int(r is report.baseline),
            }
            for task in report.tasks():
                for metric in BUCKET_METRICS:
                    key = f"{task}.{metric}"
                    rec[key] = ce.defined(r.metrics[task][metric][i]) if task in r.metrics else None
                    change = report.change(r, task, metric)
                    rec[f"{key}.change_pct"] = change[i] if change else None
                    for suffix, ci in (("", report.value_interval(r, task, metric)), (".change_pct", report.change_interval(r, task, metric))):
                        if ci is not None:
                            rec[f"{key}{suffix}.ci_lo"], rec[f"{key}{suffix}.ci_hi"] = ci[i] if ci[i] else (None, None)
            records.append(rec)
    for rec in records:
        columns += [k for k in rec if k not in columns]
    return columns, records


# --------------------------------------------------------------------------------------------
# The chart (Figures 1-3 of the paper)


def plot(report: BucketReport, path: Path) -> None:
    """Grouped bars per bucket, one panel per metric: % change against the baseline when there
    is one (the paper's figures), else the values themselves. Written atomically."""
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lrp.outputs import atomic_write_bytes

    tasks = report.tasks()
    n_buckets = len(report.edges) - 1
    # As in the paper's Figures 2 and 3: AP on the left, AR on the right; one row per task.
    panel_width = max(6.0, 0.35 * n_buckets)
    fig = Figure(figsize=(2 * panel_width, 3.6 * len(tasks)), layout="constrained")
    FigureCanvasAgg(fig)
    for k, (task, metric) in enumerate((t, m) for t in tasks for m in BUCKET_METRICS):
        ax = fig.add_subplot(len(tasks), len(BUCKET_METRICS), k + 1)
        # Empty buckets collapse: bars only where there are people, each tick with its count.
        counts = report.people_kp if task == "keypoints" else report.people
        shown = [i for i, c in enumerate(counts) if c > 0] or list(range(n_buckets))
        x = np.arange(1, len(shown) + 1)
        relative = report.baseline is not None and any(report.change(r, task, metric) is not None for r in report.runs)
        runs = [r for r in report.runs if task in r.metrics and (not relative or report.change(r, task, metric) is not None)]
        width = 0.8 / max(1, len(runs))
        for j, r in enumerate(runs):
            if relative:
                values = [np.nan if v is None else v for v in report.change(r, task, metric)]
                ci = report.change_interval(r, task, metric)
            else:
                values = [np.nan if v is None else v for v in _values(r.metrics[task][metric])]
                ci = report.value_interval(r, task, metric)
            values = np.array(values, dtype=float)[shown]
            ci = [ci[i] for i in shown] if ci is not None else None
            yerr = None
            if ci is not None:
                lo = np.array([np.nan if c is None else c[0] for c in ci])
                hi = np.array([np.nan if c is None else c[1] for c in ci])
                yerr = np.nan_to_num(np.vstack([values - lo, hi - values]).clip(min=0))
            ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(values), width, yerr=yerr, label=r.label, capsize=2)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, [f"{i + 1}\nn={counts[i]}" for i in shown], fontsize=7)
        ax.set_xlim(0.4, len(shown) + 0.6)
        what = f"{TASK_SHORT[task]} {metric}"
        ax.set_ylabel(f"% change in {metric}" if relative else metric)
        title = f"{what}: % change against {report.baseline.label}" if relative else what
        ax.set_title(title, fontsize=10)
        empty = n_buckets - len(shown)
        ax.set_xlabel(
            f"subgroup by segmentation area in {report.frame} (px²: {range_text(*report.edges[:2])}, ...), n = people"
            + (f"; {empty} empty subgroups left out" if empty else ""),
            fontsize=9,
        )
        if runs:
            ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# The command


def make_report(
    named_docs: list[tuple[str, dict]],
    labels: list[str],
    *,
    baseline_index: int | None,
    frame: tuple[str, dict, str],
    edges: list[float],
    oracle: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    engine: str = ce.DEFAULT_ENGINE,
) -> BucketReport:
    """Buckets for every document, sizes from `frame` = (name, document, label)."""
    import numpy as np

    frame_name, frame_doc, frame_label = frame
    draws = None
    if bootstrap:
        n_img = len(frame_doc["images"])
        draws = np.random.default_rng(seed).integers(0, n_img, size=(bootstrap, n_img))
    runs = [
        bucket_document(doc, edges, name=name, label=lbl, frame_doc=frame_doc, frame_name=frame_name, oracle=oracle, draws=draws,
                        engine=engine)
        for (name, doc), lbl in zip(named_docs, labels)
    ]
    people, people_kp = people_counts(frame_doc, edges)
    return BucketReport(
        edges=list(edges),
        people=people,
        people_kp=people_kp,
        frame=frame_label,
        frame_file=frame_name,
        runs=runs,
        baseline=runs[baseline_index] if baseline_index is not None else None,
        bootstrap={"resamples": bootstrap, "seed": seed, "level": 0.95, "over": "images", "paired": True} if bootstrap else None,
    )


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(help="Documents to compare with the baseline; '-' or nothing reads stdin.", show_default=False),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option("--baseline", help="The run the others are compared with (% change), e.g. the LR document.", show_default=False),
    ] = None,
    frame: Annotated[
        Optional[str],
        typer.Option(
            "--frame",
            help="Group people by their area in this document's frame (default: the baseline, else the first document).",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        Optional[float],
        typer.Option("--scale", help="Bucket width 2000*scale^2 px^2 (0.5: 500, 0.25: 125); default: the frame's own scale.", show_default=False),
    ] = None,
    edges: Annotated[
        Optional[str], typer.Option("--edges", help="Any bucket edges, e.g. 0,500,1000,2000 (buckets are (lo, hi]).", show_default=False)
    ] = None,
    label: Labels = None,
    fmt: Format = "table",
    plot_file: Annotated[
        Optional[Path], typer.Option("--plot", help="Also draw a PNG bar chart (the paper's Figures 1-3).", show_default=False)
    ] = None,
    oracle: Oracle = False,
    bootstrap: Bootstrap = 0,
    seed: Seed = 0,
    engine: Engine = ce.DEFAULT_ENGINE,
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """Detection and keypoint AP/AR by person size: the paper's 24 area subgroups.

    People are grouped by segmentation area in one frame (--frame, default the baseline: the LR
    document), 24 buckets of 500 px^2 at 1/2 scale or 125 px^2 at 1/4 scale (or --edges). Per
    bucket: people, detection AP/AR, keypoint AP/AR for each document and the % change against
    --baseline. Buckets are pycocotools area ranges with ignore semantics, never deletions; the
    table folds a run of empty buckets into one row (CSV and JSON list every bucket).

        lrp bucket --baseline lr4.json sr4-bicubic.json sr4-usrnet.json --plot fig3.png
    """
    import sys

    from lrp.evaluate import document_labels, load_documents
    from lrp.labels import history_label
    from lrp.tables import check_format, emit

    check_format(fmt)
    check_engine(engine)
    if scale is not None and edges is not None:
        raise UsageError("give --scale or --edges, not both")
    bucket_edges = parse_edges(edges) if edges is not None else None
    if scale is not None:
        bucket_edges = default_edges(scale)
    sources = list(documents or [])
    if baseline is not None:
        sources = [baseline] + [s for s in sources if s != baseline]
    named = load_documents(sources or None)
    labels = document_labels(named, label, oracle)
    if frame is not None and frame in sources:
        frame_name, frame_doc = named[sources.index(frame)]
        frame_label = labels[sources.index(frame)]
    elif frame is not None:
        ((frame_name, frame_doc),) = load_documents([frame])
        frame_label = history_label(frame_doc["lrp"].get("history", []))
        frame_label = f"{frame_label} [{Path(frame_name).name}]" if frame_label in labels else frame_label
    else:
        frame_name, frame_doc = named[0]
        frame_label = labels[0]
    if bucket_edges is None:
        bucket_edges = default_edges(paper_scale(frame_doc))
    report = make_report(
        named, labels, baseline_index=0 if baseline is not None else None, frame=(frame_name, frame_doc, frame_label),
        edges=bucket_edges, oracle=oracle, bootstrap=bootstrap, seed=seed,
        engine=engine,
    )
    if not quiet:
        width = bucket_edges[1] - bucket_edges[0]
        print(
            f"buckets: {len(bucket_edges) - 1} by segmentation area in {frame_label} ({frame_name}), "
            f"first width {width:g} px^2, (lo, hi] ranges; people above {bucket_edges[-1]:g} are in none; "
            f"baseline: {report.baseline.label if report.baseline else 'none'}",
            file=sys.stderr,
        )
    columns, records = csv_records(report)
    emit(build_tables(report), fmt, output, csv_columns=columns, records=records, json_data=json_data(report))
    if plot_file is not None:
        plot(report, plot_file)
        if not quiet:
            print(f"chart: {plot_file}", file=sys.stderr)


# `lrp.bucket(...)` calls bucket_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
