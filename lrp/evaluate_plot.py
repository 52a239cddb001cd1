"""`lrp evaluate --plot`: a metric against an argument of the chain (CAL Fig. 1: AP against input
size), or a bar per document. Matplotlib is imported only when a chart is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lrp import cocoeval as ce
from lrp.errors import LrpError, UsageError

# The evaluations are lrp.evaluate.Evaluation objects (not imported: lrp.evaluate imports this module).

# Every metric name of any task, in pycocotools' order (keypoints add AR50 and AR75).
_PLOT_METRICS = list(dict.fromkeys(m.name for task in ce.TASKS for m in ce.METRICS[task]))


def parse_plot_x(text: str) -> tuple[str, str]:
    """`pose.input_size` as ("pose", "input_size")."""
    step, dot, arg = text.strip().partition(".")
    if not (dot and step and arg):
        raise UsageError(f"--plot-x {text!r}: expected STEP.ARG, e.g. pose.input_size, degrade.scale or superres.scale")
    return step, arg


def parse_plot_metric(text: str) -> tuple[str | None, str]:
    """`AP` as (None, "AP"): a panel per task; `bbox.AP_S` as ("bbox", "AP_S"): that panel only."""
    task, dot, key = text.strip().rpartition(".")
    if dot and task not in ce.TASKS:
        raise UsageError(f"--plot-metric {text!r}: unknown task {task!r} (known: {', '.join(ce.TASKS)})")
    known = [m.name for m in ce.METRICS[task]] if task else _PLOT_METRICS
    metric = ce.METRIC_NAMES.get(key.lower())
    if metric not in known:
        raise UsageError(f"--plot-metric {text!r}: unknown metric {key!r} (known: {', '.join(known)})")
    return task or None, metric


def plot_tasks(evaluations: list, task: str | None, metric: str) -> list[str]:
    """The panels: every evaluated task (or the one named), each of which must have the metric."""
    evaluated = [t for t in ce.TASKS if any(t in ev.metrics for ev in evaluations)]
    if task is not None:
        if task not in evaluated:
            raise UsageError(f"--plot-metric {task}.{metric}: no document has {task} results (evaluated: {', '.join(evaluated)})")
        return [task]
    for t in evaluated:
        names = [m.name for m in ce.METRICS[t]]
        if metric not in names:
            others = [o for o in evaluated if metric in {m.name for m in ce.METRICS[o]}]
            hint = f"; {others[0]}.{metric} draws the {others[0]} panel only" if others else ""
            raise UsageError(f"--plot-metric {metric}: {t} has no {metric} (its metrics: {', '.join(names)}){hint}")
    return evaluated


def _is_number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def history_x(history: list[dict], name: str, step: str, arg: str) -> tuple[float, str, bool]:
    """x of one document, from args[ARG] of the last STEP of its history: (x, tick text, is a pair).

    A [w, h] pair (an input size) is placed by its pixel count w*h, as CAL's Fig. 1 spaces its
    input sizes; a number as it is.
    """
    key = f"{step}.{arg}"
    entries = [h for h in history if h.get("command") == step]
    if not entries:
        steps = ", ".join(dict.fromkeys(str(h.get("command")) for h in history)) or "none"
        raise LrpError(f"{name}: --plot-x {key}: the history has no {step} step (its steps: {steps})")
    args = entries[-1].get("args") or {}
    if arg not in args:
        raise LrpError(f"{name}: --plot-x {key}: its last {step} step has no argument {arg!r} (its arguments: {', '.join(args) or 'none'})")
    value = args[arg]
    if _is_number(value):
        return float(value), f"{value:g}", False
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) and v > 0 for v in value):
        w, h = value
        return float(w) * float(h), f"{w:g}x{h:g}", True
    raise LrpError(f"{name}: --plot-x {key}: {value!r} is neither a number nor a [w, h] pair")


@dataclass
class PlotLine:
    label: str
    members: list[int]  # document indices, sorted by x
    xs: list[float]
    ticks: list[str]  # "192x256" for a pair, "0.25" for a number


def plot_lines(named_histories: list[tuple[str, list]], labels: list[str], x_key: str, group: bool = True) -> tuple[list[PlotLine], bool]:
    """The lines of `--plot-x` and whether x are [w, h] pairs (a log2 axis of pixel counts).

    With `group`, documents of the same label form one line (the --label text the user gave,
    before document_labels told repeated ones apart); else every document is a line of its own.
    """
    step, arg = parse_plot_x(x_key)
    read = [history_x(history, name, step, arg) for name, history in named_histories]
    pairs = [is_pair for _, _, is_pair in read]
    if len(set(pairs)) > 1:
        pair, number = (next(n for (n, _), p in zip(named_histories, pairs) if p == want) for want in (True, False))
        raise LrpError(f"--plot-x {x_key}: {pair} has a [w, h] pair, {number} a number; one axis cannot show both")
    groups: dict[object, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label if group else i, []).append(i)
    lines = []
    for members in groups.values():
        members = sorted(members, key=lambda i: read[i][0])
        for a, b in zip(members, members[1:]):
            if read[a][0] == read[b][0]:
                at = read[a][1] if read[a][1] == read[b][1] else f"{read[a][1]} and {read[b][1]} ({read[a][0]:g} px each)"
                raise LrpError(
                    f"--plot-x {x_key}: {named_histories[a][0]} and {named_histories[b][0]} are both at {at} on the line "
                    f"{labels[a]!r}; give them different --label texts"
                )
        lines.append(PlotLine(labels[members[0]], members, [read[i][0] for i in members], [read[i][1] for i in members]))
    return lines, bool(pairs and pairs[0])


def _merged_ticks(ticks: dict, log: bool, closest: float = 0.04) -> tuple[list[float], list[str]]:
    """Tick positions and labels, ticks closer than `closest` of the axis span sharing one label
    ("256x256/257x257"), so that neighbouring sizes do not print over each other."""
    import math

    xs = sorted(ticks)
    pos = [math.log2(x) if log else x for x in xs]
    span = (pos[-1] - pos[0]) or 1.0
    out_x, out_text = [xs[0]], ["/".join(ticks[xs[0]])]
    last = pos[0]
    for x, p in zip(xs[1:], pos[1:]):
        if p - last < closest * span:
            out_text[-1] += "/" + "/".join(ticks[x])
        else:
            out_x.append(x)
            out_text.append("/".join(ticks[x]))
            last = p
    return out_x, out_text


def plot_series(
    evaluations: list, labels: list[str] | None, x_key: str | None, metric: str
) -> dict[str, list[tuple[str, list[tuple[float | None, float]]]]]:
    """What `--plot` draws: {task: [(line label, [(x, y), ...])]}, y NaN where undefined.

    `labels` are the --label texts (documents sharing one form a line), None for a line per
    document under its row label; `metric` is `AP` or `bbox.AP_S` (parse_plot_metric). Without
    `x_key` every document is a bar of its own: x is None.
    """
    task, name = parse_plot_metric(metric)
    tasks = plot_tasks(evaluations, task, name)

    def y(ev, t: str) -> float:
        value = ce.defined(ev.metrics[t][name])
        return float("nan") if value is None else value

    # A document without results of a task (no masks, say) is left out of that panel.
    if x_key is None:
        return {t: [(ev.label, [(None, y(ev, t))]) for ev in evaluations if t in ev.metrics] for t in tasks}
    lines, _ = plot_lines(_histories(evaluations), labels or [ev.label for ev in evaluations], x_key, group=labels is not None)
    out = {}
    for t in tasks:
        entries = []
        for line in lines:
            points = [(x, y(evaluations[i], t)) for i, x in zip(line.members, line.xs) if t in evaluations[i].metrics]
            if points:
                entries.append((line.label, points))
        out[t] = entries
    return out


def _histories(evaluations: list) -> list[tuple[str, list]]:
    return [(ev.name, ev.history) for ev in evaluations]


def plot(
    evaluations: list, labels: list[str] | None, x_key: str | None, metric: str, path: Path
) -> None:
    """One panel per task: the metric against x_key (a line per label, a marker per document),
    or a bar per document without it. Undefined values are gaps. Written atomically."""
    import io
    import math

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, NullLocator

    from lrp.outputs import atomic_write_bytes

    series = plot_series(evaluations, labels, x_key, metric)
    _, name = parse_plot_metric(metric)
    ticks: dict[float, list[str]] = {}
    pairs = False
    if x_key is not None:
        lines, pairs = plot_lines(_histories(evaluations), labels or [ev.label for ev in evaluations], x_key, group=labels is not None)
        for line in lines:
            for x, text in zip(line.xs, line.ticks):
                ticks.setdefault(x, [])
                if text not in ticks[x]:
                    ticks[x].append(text)
    width = 6.4 if x_key is not None else max(5.0, 0.9 * len(evaluations) + 1.5)
    fig = Figure(figsize=(width * len(series), 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    for k, (task, entries) in enumerate(series.items()):
        ax = fig.add_subplot(1, len(series), k + 1)
        ys = [y for _, points in entries for _, y in points]
        if x_key is None:
            pos = np.arange(len(entries))
            for j, (label, [(_, value)]) in enumerate(entries):
                if math.isnan(value):  # no person in range: a gap, marked, never a bar of height 0
                    ax.text(j, 0, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
                else:
                    bar = ax.bar(j, value, 0.7, color=f"C{j % 10}")
                    ax.bar_label(bar, fmt="%.3f", fontsize=8)
            many = len(entries) > 3  # long labels side by side would overlap
            ax.set_xticks(pos, [label for label, _ in entries], rotation=20 if many else 0, ha="right" if many else "center", fontsize=8)
            ax.set_xlim(-0.6, len(entries) - 0.4)
        else:
            for j, (label, points) in enumerate(entries):
                xs, vals = zip(*points)
                ax.plot(xs, vals, marker="o", label=label, color=f"C{j % 10}")  # NaN breaks the line: a gap
            if pairs:
                ax.set_xscale("log", base=2)
                ax.set_xlim(min(ticks) / 1.5, max(ticks) * 1.5)  # room for the outer tick labels
                ax.xaxis.set_minor_locator(NullLocator())
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xlabel(f"{x_key} (w x h, placed by pixel count, log2)")
            else:
                ax.set_xlabel(x_key)
            if pairs or len(ticks) <= 12:
                xs, texts = _merged_ticks(ticks, log=pairs)
                ax.set_xticks(xs, texts, fontsize=8, rotation=30 if len(xs) > 6 else 0)
            ax.legend(fontsize=8)
        top = max([v for v in ys if not math.isnan(v)], default=1.0)
        ax.set_ylim(0, max(1e-3, top) * 1.08)
        ax.set_ylabel(name)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{ce.TASK_TITLES[task]}: {name}" + (f" against {x_key}" if x_key else ""), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


