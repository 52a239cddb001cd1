"""`lrp evaluate`: the paper's AP/AR tables from one or more documents, side by side.

Every number is pycocotools' own `COCOeval.stats` on the document's ground truth and results
(see lrp/cocoeval.py); this module picks the tasks, labels the rows, applies `--size-from`,
`--fail-under` and the output format.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp import cocoeval as ce
from lrp.errors import BelowBar, LrpError, UsageError
from lrp.options import Quiet

# --------------------------------------------------------------------------------------------
# Reading documents (shared with `bucket`)


def load_documents(sources: list[str] | None) -> list[tuple[str, dict]]:
    """(name, document) for each source; none means stdin.

    A plain COCO file is accepted as it is: evaluation reads no pixels, so it needs no
    `--images`.
    """
    from lrp.document import adopt, check_coco, parse_json, read_json_file

    sources = list(sources or ["-"])
    if sources.count("-") > 1:
        raise UsageError("stdin ('-') can be given only once")
    loaded = []
    for source in sources:
        if source == "-":
            name = "<stdin>"
            if _is_terminal(sys.stdin):
                raise UsageError("no input: give one or more document paths, '-' or pipe one in")
            text = sys.stdin.read()
            if not text.strip():
                raise LrpError("<stdin>: empty input, expected a COCO/lrp JSON document")
            data = parse_json(text, name)
        else:
            name = source
            data = read_json_file(source)
        check_coco(data, name)
        plain = not isinstance(data.get("lrp"), dict)
        placeholder_root = Path(source).parent if source != "-" else Path(".")
        loaded.append((name, adopt(data, name, images=placeholder_root if plain else None)))
    return loaded


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def document_labels(named_docs: list[tuple[str, dict]], overrides: list[str] | None, oracle: bool = False) -> list[str]:
    """Row labels: the --label texts, else from each history ("LR 1/4 > bicubic x4"); a label of
    more than one document gets its file name, so that every row can be told apart (a --label
    text shared on purpose makes one line of `evaluate --plot-x`, see plot_lines)."""
    from lrp.labels import history_label

    if overrides:
        if len(overrides) != len(named_docs):
            raise UsageError(f"--label given {len(overrides)} times for {len(named_docs)} documents")
        labels = list(overrides)
    else:
        labels = [history_label(doc["lrp"].get("history", [])) + (" (oracle)" if oracle else "") for _, doc in named_docs]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [f"{label} [{Path(name).name}]" if label in repeated else label for label, (name, _) in zip(labels, named_docs)]


def history_text(history: list[dict]) -> str:
    """The evaluated history as `degrade(scale=0.25) > superres(model=usrnet)`."""
    steps = []
    for step in history:
        args = ", ".join(f"{k}={v}" for k, v in (step.get("args") or {}).items() if v not in (None, False, []))
        steps.append(f"{step.get('command', '?')}({args})")
    return " > ".join(steps) if steps else "(none: the input as given)"


# --------------------------------------------------------------------------------------------
# The library function


@dataclass
class Evaluation:
    name: str
    label: str
    history: list
    box_source: str
    oracle: bool
    size_from: str | None
    # task -> metric name -> pycocotools value (-1 where no person is in range)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # task -> metric name -> (low, high) bootstrap interval
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    oks_sigmas: str | None = None  # whose OKS sigmas scored the poses (lrp.keypoints.sigmas_source)


def evaluate_document(
    doc: dict,
    *,
    name: str = "document",
    label: str | None = None,
    size_doc: dict | None = None,
    size_name: str | None = None,
    oracle: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    engine: str = ce.DEFAULT_ENGINE,
) -> Evaluation:
    """pycocotools' summary for every task the document has results for."""
    from lrp.labels import box_source, history_label

    history = doc["lrp"].get("history", [])
    tasks = ce.oracle_tasks(doc) if oracle else ce.results_tasks(doc)
    if not tasks:
        raise LrpError(f"{name} has no lrp.detections or lrp.poses to evaluate (use --oracle for GT as predictions)")
    sizes = ce.size_frame(doc, size_doc, name, size_name or "size frame") if size_doc is not None else None
    ev = Evaluation(
        name=name,
        label=label or history_label(history),
        history=history,
        box_source="gt (oracle)" if oracle else box_source(history),
        oracle=oracle,
        size_from=size_name if size_doc is not None else None,
    )
    if "keypoints" in tasks:
        from lrp.keypoints import sigmas_source

        ev.oks_sigmas = sigmas_source(doc, name)
    coco_gt = ce.gt_coco(doc, name, engine)
    for task in tasks:
        E = ce.run_cocoeval(doc, task, name=name, sizes=sizes, oracle=oracle, coco_gt=coco_gt, keep_per_image=bool(bootstrap))
        names = [m.name for m in ce.METRICS[task]]
        ev.metrics[task] = {n: float(v) for n, v in zip(names, E.stats)}
        if bootstrap:
            ev.intervals[task] = bootstrap_intervals(E, task, bootstrap, seed)
    return ev


def check_engine(engine: str) -> None:
    if engine not in ce.ENGINES:
        raise UsageError(f"--engine {engine!r}: expected one of {', '.join(ce.ENGINES)}")


def bootstrap_intervals(E, task: str, n: int, seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every summary metric over `n` resamplings of the images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m.name: [] for m in ce.METRICS[task]}
    for result in ce.bootstrap_evals(E, n, rng):
        for k, v in ce.metric_values(E, task, result).items():
            if v >= 0:
                samples[k].append(v)
    alpha = (1 - level) / 2
    return {
        k: (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
        for k, v in samples.items()
        if v
    }


# --------------------------------------------------------------------------------------------
# --fail-under


@dataclass(frozen=True)
class Bar:
    spec: str
    task: str | None  # None: keypoints if the document has them, else bbox
    metric: str
    value: float




def parse_bars(specs: list[str] | None) -> list[Bar]:
    bars = []
    for spec in specs or []:
        match = re.fullmatch(r"\s*(?:(bbox|segm|keypoints)\.)?([A-Za-z0-9_]+)\s*=\s*([-+0-9.eE]+)\s*", spec)
        if not match:
            raise UsageError(f"--fail-under {spec!r}: expected KEY=VALUE, e.g. AP=0.5 or keypoints.AP_M=0.6")
        task, key, value = match.groups()
        metric = ce.METRIC_NAMES.get(key.lower())
        if metric is None or (task and metric not in {m.name for m in ce.METRICS[task]}):
            known = ", ".join(m.name for m in ce.METRICS[task or "bbox"])
            raise UsageError(f"--fail-under {spec!r}: unknown metric {key!r} (known: {known})")
        try:
            bars.append(Bar(spec, task, metric, float(value)))
        except ValueError:
            raise UsageError(f"--fail-under {spec!r}: {value!r} is not a number") from None
    return bars


def bar_task(ev: Evaluation, bar: Bar) -> str:
    """The task a bar applies to in this document; a usage error if it has no such results."""
    task = bar.task
    if task is None:
        has_kp = "keypoints" in ev.metrics and bar.metric in ev.metrics["keypoints"]
        task = "keypoints" if has_kp else "bbox"
    if task not in ev.metrics or bar.metric not in ev.metrics[task]:
        raise UsageError(f"--fail-under {bar.spec!r}: {ev.name} has no {task}.{bar.metric}")
    return task


def check_bars(evaluations: list[Evaluation], bars: list[Bar]) -> None:
    """Raise BelowBar naming every metric under its bar (an undefined metric fails too)."""
    failures = []
    for ev in evaluations:
        for bar in bars:
            task = bar_task(ev, bar)
            value = ev.metrics[task][bar.metric]
            if value < 0:
                failures.append(f"{ev.label}: {task}.{bar.metric} is undefined (no people in range), bar {bar.value:g}")
            elif value < bar.value:
                failures.append(f"{ev.label}: {task}.{bar.metric} = {value:.3f} is below {bar.value:g}")
    if failures:
        raise BelowBar("; ".join(failures))


# --------------------------------------------------------------------------------------------
# Output


def settings_of(evaluations: list[Evaluation], engine: str = ce.DEFAULT_ENGINE) -> dict:
    """The pycocotools settings used (for stderr and the JSON output)."""
    from pycocotools.cocoeval import Params

    tasks = [t for t in ce.TASKS if any(t in ev.metrics for ev in evaluations)]
    out: dict = {"category": "person", "tasks": {}}
    for task in tasks:
        p = Params(iouType=task)
        out["tasks"][task] = {
            "iouType": task,
            "maxDets": list(p.maxDets),
            "iouThrs": [round(float(t), 2) for t in p.iouThrs],
            "areaRng": {lbl: [float(a) for a in rng] for lbl, rng in zip(p.areaRngLbl, p.areaRng)},
        }
        if task == "keypoints":
            out["tasks"][task]["oks_sigmas"] = sorted({ev.oks_sigmas for ev in evaluations if ev.oks_sigmas})
    size_from = {ev.size_from for ev in evaluations}
    out["size_from"] = size_from.pop() if len(size_from) == 1 else None
    out["engine"] = engine
    return out


def _settings_line(settings: dict) -> str:
    parts = []
    for task, s in settings["tasks"].items():
        areas = " ".join(f"{k}=[{v[0]:g},{v[1]:g}]" for k, v in s["areaRng"].items())
        sigmas = f" OKS sigmas of {', '.join(s['oks_sigmas'])}" if s.get("oks_sigmas") else ""
        parts.append(f"{task}: maxDets={s['maxDets']} {areas}{sigmas}")
    frame = settings["size_from"] or "each document's own frame"
    engine = settings.get("engine", ce.DEFAULT_ENGINE)
    return f"settings: engine {engine}; person only; " + "; ".join(parts) + f"; size groups from {frame}"


def print_provenance(evaluations: list[Evaluation], settings: dict) -> None:
    for ev in evaluations:
        print(f"evaluated {ev.label} ({ev.name}): history {history_text(ev.history)}; boxes: {ev.box_source}", file=sys.stderr)
    print(_settings_line(settings), file=sys.stderr)


def _with_interval(ev: Evaluation, task: str, metric: str):
    from lrp.tables import cell_text

    value = ce.defined(ev.metrics[task][metric])
    ci = ev.intervals.get(task, {}).get(metric)
    if value is None or ci is None:
        return value
    return f"{cell_text(value)} [{ci[0]:.3f}, {ci[1]:.3f}]"


def build_tables(evaluations: list[Evaluation]):
    from lrp.tables import Table

    tables = []
    for task in ce.TASKS:
        rows = [ev for ev in evaluations if task in ev.metrics]
        if not rows:
            continue
        # AP50 and AP75 beside AP on a terminal wide enough (the paper's tables leave them out).
        extra = ("AP50", "AP75") if task != "keypoints" else ()
        cols = (ce.PAPER_COLUMNS[task][0], *extra, *ce.PAPER_COLUMNS[task][1:])
        t = Table(ce.TASK_TITLES[task], ["document", *cols], optional=extra)
        for ev in rows:
            t.rows.append([ev.label, *(_with_interval(ev, task, c) for c in cols)])
        tables.append(t)
    return tables


def json_data(evaluations: list[Evaluation], settings: dict) -> dict:
    docs = []
    for ev in evaluations:
        entry = {
            "label": ev.label,
            "file": ev.name,
            "history": ev.history,
            "box_source": ev.box_source,
            "oracle": ev.oracle,
            "size_from": ev.size_from,
            # pycocotools' -1 ("no people in this range") is null here.
            "metrics": {t: {k: ce.defined(v) for k, v in m.items()} for t, m in ev.metrics.items()},
        }
        if ev.intervals:
            entry["intervals"] = {t: {k: list(v) for k, v in m.items()} for t, m in ev.intervals.items()}
        docs.append(entry)
    return {"settings": settings, "documents": docs}


def csv_records(evaluations: list[Evaluation]) -> tuple[list[str], list[dict]]:
    columns = ["label", "file"]
    records = []
    for ev in evaluations:
        rec = {"label": ev.label, "file": ev.name}
        for task, metrics in ev.metrics.items():
            for k, v in metrics.items():
                rec[f"{task}.{k}"] = ce.defined(v)
                for end, bound in zip(("lo", "hi"), ev.intervals.get(task, {}).get(k, ())):
                    rec[f"{task}.{k}.ci_{end}"] = bound
        records.append(rec)
    for task in ce.TASKS:
        for rec in records:
            for k in rec:
                if k.startswith(task + ".") and k not in columns:
                    columns.append(k)
    return columns, records


# --------------------------------------------------------------------------------------------
# Options shared with `bucket`

Labels = Annotated[
    Optional[list[str]],
    typer.Option("--label", help="Label, once per document in order (default: from its history).", show_default=False),
]
Format = Annotated[str, typer.Option("--format", metavar="[table|markdown|csv|json]", help="Output format.")]
Oracle = Annotated[
    bool, typer.Option("--oracle", metavar="", help="Use the ground truth as predictions (score 1): a sanity check, AP must be 1.")
]
Bootstrap = Annotated[
    int,
    typer.Option(
        "--bootstrap", min=0, help="Resample images N times (paired across documents) for 95% confidence intervals; 0: off."
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="[hotcoco|pycocotools]",
        help="hotcoco (fast, the default) or pycocotools (the reference); both give pycocotools' numbers.",
    ),
]
TableOutput = Annotated[
    Optional[Path], typer.Option("-o", "--output", help="Write the table to FILE atomically instead of stdout.", show_default=False)
]


# --------------------------------------------------------------------------------------------
# The command


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(help="Documents to evaluate, one row each; '-' or nothing reads stdin.", show_default=False),
    ] = None,
    size_from: Annotated[
        Optional[str],
        typer.Option(
            "--size-from",
            help="Take size groups (S/M/L) from this document's frame (the LR one), OKS and IoU from "
            "the evaluated frame: the paper's rule for comparing SR with its LR input.",
            show_default=False,
        ),
    ] = None,
    label: Labels = None,
    fmt: Format = "table",
    fail_under: Annotated[
        Optional[list[str]],
        typer.Option(
            "--fail-under",
            help="KEY=VALUE, e.g. AP=0.5, bbox.AP_M=0.6, keypoints.AR=0.7 (bare KEY: keypoints if "
            "present, else bbox); exit 3 when any document is below. Repeatable.",
            show_default=False,
        ),
    ] = None,
    oracle: Oracle = False,
    bootstrap: Bootstrap = 0,
    seed: Seed = 0,
    engine: Engine = ce.DEFAULT_ENGINE,
    timing: Annotated[
        bool,
        typer.Option("--timing", help="Add the time each model step recorded (ms per image and per person, device) as columns beside AP, and a per-step table."),
    ] = False,
    output: TableOutput = None,
    plot_file: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help="Also draw a PNG chart of --plot-metric, one panel per task: a bar per document, or lines against --plot-x.",
            show_default=False,
        ),
    ] = None,
    plot_x: Annotated[
        Optional[str],
        typer.Option(
            "--plot-x",
            metavar="STEP.ARG",
            help="The chart's x: args[ARG] of the last STEP in each document's history, e.g. pose.input_size "
            "(WxH, placed by pixel count on a log2 axis), degrade.scale, superres.scale; documents given the "
            "same --label form one line.",
            show_default=False,
        ),
    ] = None,
    plot_metric: Annotated[
        Optional[str],
        typer.Option(
            "--plot-metric",
            metavar="METRIC",
            help="The metric charted (default AP): any of the task's, e.g. AP_M, AR; TASK.METRIC (bbox.AP_S) for that panel only.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
):
    """Print the paper's AP/AR tables (pycocotools COCOeval, person category) for one or more documents.

    Person detection (AP, AP_S, AP_M, AP_L, AR, AR_S, AR_M, AR_L) from lrp.detections, masks when
    every detection has one, keypoints (AP, AP_M, AP_L, AR, AR_M, AR_L) from lrp.poses. Several
    documents give one row each, labelled by their history. The numbers equal a plain COCOeval
    run on the same data; the history, box source and settings go to stderr (and into --format json).

        lrp evaluate lr4.json sr4.json --size-from lr4.json --format markdown

    --plot also draws a PNG chart; with --plot-x it is AP against an argument of the chain, one
    line per --label text (CAL Fig. 1: AP against input size).

        lrp evaluate --label hrnet p48x64.json --label hrnet p96x128.json --plot fig1.png --plot-x pose.input_size
    """
    from lrp.tables import check_format, emit

    check_format(fmt)
    check_engine(engine)
    bars = parse_bars(fail_under)
    if plot_file is None:
        for flag, value in (("--plot-x", plot_x), ("--plot-metric", plot_metric)):
            if value is not None:
                raise UsageError(f"{flag} draws nothing without --plot FILE.png")
    metric = plot_metric or "AP"
    if plot_file is not None:
        from lrp import evaluate_plot  # matplotlib itself only when drawing

        evaluate_plot.parse_plot_metric(metric)
        if plot_x is not None:
            evaluate_plot.parse_plot_x(plot_x)
    named = load_documents(documents)
    labels = document_labels(named, label, oracle)
    line_labels = list(label) if label else None  # the texts as given: a repeated one is a line
    if plot_file is not None and plot_x is not None:  # a document without that x fails before any evaluation
        evaluate_plot.plot_lines([(n, d["lrp"].get("history", [])) for n, d in named], line_labels or labels, plot_x, group=line_labels is not None)
    size_doc = size_name = None
    if size_from is not None:
        ((size_name, size_doc),) = load_documents([size_from])
    evaluations = [
        evaluate_document(
            doc, name=name, label=lbl, size_doc=size_doc, size_name=size_name, oracle=oracle, bootstrap=bootstrap, seed=seed,
            engine=engine,
        )
        for (name, doc), lbl in zip(named, labels)
    ]
    for ev in evaluations:  # a bar naming absent results is a usage error, before any output
        for bar in bars:
            bar_task(ev, bar)
    if plot_file is not None:
        evaluate_plot.plot_tasks(evaluations, *evaluate_plot.parse_plot_metric(metric))
    settings = settings_of(evaluations, engine)
    if bootstrap:
        settings["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 0.95, "over": "images"}
    if not quiet:
        print_provenance(evaluations, settings)
    columns, records = csv_records(evaluations)
    notes = ["n/a: no person of that size in the ground truth (pycocotools' -1)."] if fmt != "table" else []
    tables, data = build_tables(evaluations), json_data(evaluations, settings)
    if timing:
        from lrp.timing import add_timing

        add_timing(tables, columns, records, data["documents"], {ev.label: ev.history for ev in evaluations})
    emit(tables, fmt, output, csv_columns=columns, records=records, json_data=data, notes=notes)
    if plot_file is not None:
        evaluate_plot.plot(evaluations, line_labels, plot_x, metric, plot_file)
        if not quiet:
            print(f"chart: {plot_file}", file=sys.stderr)
    check_bars(evaluations, bars)


# `lrp.evaluate(...)` calls evaluate_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
