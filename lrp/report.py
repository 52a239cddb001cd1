"""`lrp report`: a static HTML contact sheet of one run, openable offline.

One folder: `index.html` (no scripts, no external resources, relative paths only), the bucket
chart `bucket.png`, and `strips/` with one `lrp draw` strip per person shown. The page holds the
`evaluate` tables (size groups from the baseline's frame, the paper's rule), the bucket chart,
and per size bucket the people whose keypoints SR helped most and hurt most: OKS in the baseline
(the LR run) against OKS in the compared run, with the strip of every document side by side.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.draw import FilesDir
from lrp.evaluate import Labels
from lrp.options import Images, Quiet, Workers


@dataclass(frozen=True)
class Change:
    """One person's keypoint OKS in the baseline and in the compared run (0 where no pose matched)."""

    image_id: int
    ann_id: int
    area: float  # in the baseline's frame: the area that picks the bucket
    before: float
    after: float

    @property
    def gain(self) -> float:
        return self.after - self.before


def keypoint_changes(baseline, run) -> list[Change]:
    """Every person with keypoints, OKS before (baseline) and after (run), from lrp/people.py."""
    out = []
    for image_id in sorted(baseline.people):
        for a in sorted(baseline.people[image_id], key=lambda a: a["id"]):
            if a.get("iscrowd") or not a.get("num_keypoints") or not a.get("keypoints"):
                continue
            before, after = baseline.poses.get(a["id"]), run.poses.get(a["id"])
            out.append(Change(image_id, a["id"], float(a["area"]), before.value if before else 0.0, after.value if after else 0.0))
    return out


def by_bucket(changes: list[Change], edges: list[float], per_bucket: int) -> list[tuple[str, list[Change], list[Change], int]]:
    """(range text, largest gains, largest losses, people) for every bucket that has people."""
    from lrp.bucket import range_text

    groups = []
    bounds = list(zip(edges, edges[1:])) + [(edges[-1], float("inf"))]
    for lo, hi in bounds:
        inside = [c for c in changes if lo < c.area <= hi]
        if not inside:
            continue  # empty buckets collapse
        # Stable order: by gain, then by ids, so that ties never reshuffle between runs.
        ranked = sorted(inside, key=lambda c: (-c.gain, c.image_id, c.ann_id))
        # A change shows only when it is visible at the 3 decimals printed.
        gains = [c for c in ranked if c.gain >= 0.0005][:per_bucket]
        losses = [c for c in reversed(ranked) if c.gain <= -0.0005][:per_bucket]
        text = f"above {lo:g}" if hi == float("inf") else range_text(lo, hi)
        groups.append((text, gains, losses, len(inside)))
    return groups


# --------------------------------------------------------------------------------------------
# HTML


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0 12px 12px 0; vertical-align: top; }
figure img { height: 180px; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 12px; }
.gain { color: #1a7f37; } .loss { color: #b42318; }
img.chart { max-width: 100%; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _figure(change: Change, href: str) -> str:
    cls = "gain" if change.gain > 0 else "loss"
    return (
        f'<figure><a href="{_esc(href)}"><img src="{_esc(href)}" alt="image {change.image_id} person {change.ann_id}"></a>'
        f"<figcaption>image {change.image_id}, person {change.ann_id}, area {change.area:g} px²: OKS "
        f'{change.before:.3f} → {change.after:.3f} <span class="{cls}">({change.gain:+.3f})</span></figcaption></figure>'
    )


def render_page(title: str, provenance: list[str], tables_html: str, chart: str | None, groups, strip_of, compared: tuple[str, str]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<ul>" + "".join(f"<li>{_esc(p)}</li>" for p in provenance) + "</ul>",
        "<h2>Evaluation</h2>",
        tables_html,
    ]
    if chart:
        parts += ["<h2>By person size</h2>", f'<img class="chart" src="{_esc(chart)}" alt="AP and AR by size bucket">']
    base, run = compared
    parts.append(f"<h2>Largest keypoint gains and losses: {_esc(run)} against {_esc(base)}</h2>")
    if not groups:
        parts.append("<p>No person with keypoints to compare.</p>")
    for text, gains, losses, n in groups:
        parts.append(f"<h3>Area {_esc(text)} px² in {_esc(base)} ({n} people)</h3>")
        for name, items in (("gains", gains), ("losses", losses)):
            inner = "".join(_figure(c, strip_of(c)) for c in items) or f"<p>No {name}.</p>"
            parts.append(f"<h4>{name.capitalize()}</h4><div>{inner}</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# The library function


def write_report(
    named_docs: list[tuple[str, dict]],
    out_dir: Path,
    *,
    labels: list[str] | None = None,
    per_bucket: int = 3,
    workers: int | None = None,
    quiet: bool = False,
) -> Path:
    """Write index.html, bucket.png and strips/ into `out_dir`; return the page's path."""
    from lrp import bucket
    from lrp.outputs import atomic_write_text
    from lrp.draw import check_out_dir, draw_strips, prepare, strip_name
    from lrp.evaluate import build_tables, document_labels, evaluate_document, history_text
    from lrp.tables import render_html

    if len(named_docs) < 2:
        raise UsageError("give at least two documents: the baseline (the LR run) and a run to compare with it")
    labels = document_labels(named_docs, labels)
    sources = prepare(named_docs, labels)
    base_name, base_doc = named_docs[0]
    evaluated = [(k, nd) for k, nd in enumerate(named_docs) if nd[1]["lrp"].get("detections") or nd[1]["lrp"].get("poses")]
    if not evaluated or evaluated[0][0] != 0:
        raise LrpError(f"{base_name}: the baseline has no lrp.detections or lrp.poses to compare with")
    evaluations = [
        evaluate_document(doc, name=name, label=labels[k], size_doc=base_doc, size_name=base_name) for k, (name, doc) in evaluated
    ]
    provenance = [f"{ev.label} ({ev.name}): {history_text(ev.history)}; boxes: {ev.box_source}" for ev in evaluations]
    provenance.append(f"size groups (S/M/L and buckets) from the frame of {labels[0]} ({base_name}); n/a: no person of that size")
    target = check_out_dir(out_dir, sources)
    edges = bucket.default_edges(bucket.paper_scale(base_doc))
    runs = [named_docs[k] for k, _ in evaluated]
    report = bucket.make_report(
        runs, [labels[k] for k, _ in evaluated], baseline_index=0, frame=(base_name, base_doc, labels[0]), edges=edges
    )
    bucket.plot(report, target / "bucket.png")
    both_posed = all(s.doc["lrp"].get("poses") for s in sources[:2])
    changes = keypoint_changes(sources[0], sources[1]) if both_posed else []
    groups = by_bucket(changes, edges, per_bucket)
    shown = sorted({(c.image_id, c.ann_id) for _, gains, losses, _ in groups for c in gains + losses})
    draw_strips(sources, shown, target / "strips", workers=workers, quiet=quiet)
    page = render_page(
        f"lrp report: {labels[1]} against {labels[0]}",
        provenance,
        render_html(build_tables(evaluations)),
        "bucket.png",
        groups,
        lambda c: f"strips/{strip_name(c.image_id, c.ann_id)}",
        (labels[0], labels[1]),
    )
    path = target / "index.html"
    atomic_write_text(path, page)
    return path


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="The baseline (the LR run), the run to compare with it (SR), then any more documents of the "
            "same images to show in the strips (the original).",
            show_default=False,
        ),
    ] = None,
    out_dir: FilesDir = None,
    per_bucket: Annotated[int, typer.Option("--per-bucket", min=1, help="People shown per bucket for gains and for losses.")] = 3,
    label: Labels = None,
    images: Images = None,
    workers: Workers = None,
    quiet: Quiet = False,
):
    """Write a static HTML contact sheet of a run: tables, bucket chart, biggest SR gains and losses.

    The page (index.html in --out-dir, relative paths, no scripts or external resources, so it opens
    offline) holds the evaluate tables with size groups from the baseline's frame, the bucket chart,
    and for every size bucket with people the persons whose keypoint OKS the compared run raised or
    lowered most, each with its `lrp draw` strip of all documents side by side.

        lrp report lr4-pose.json sr4-pose.json hr-pose.json --out-dir report/
    """
    from lrp.draw import load_sources

    if out_dir is None:
        raise UsageError("--out-dir DIR is required (the folder for index.html and its images)")
    named = load_sources(documents, images)
    path = write_report(named, out_dir, labels=label, per_bucket=per_bucket, workers=workers, quiet=quiet)
    print(path)
    if not quiet:
        print(f"report: open {path} in a browser (works offline)", file=sys.stderr)
