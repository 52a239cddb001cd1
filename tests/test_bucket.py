"""`lrp bucket`: the paper's 24 area groups, numbers equal to pycocotools' own summarize on each
range, sizes from the LR frame, % changes, empty buckets, the chart, and bad inputs."""

from __future__ import annotations

import copy
import csv
import io
import math

import numpy as np
import pytest

from lrp import bucket as bk
from tests.conftest import load_json, run_lrp
from tests.test_evaluate import gt_dataset, load_val4, plain_cocoeval, rescaled, write

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def val4(coco_val4):
    return load_val4(coco_val4)


@pytest.fixture(scope="module")
def lr4(val4):
    return rescaled(val4, 0.25)


# --------------------------------------------------------------------------------------------
# Edges


def test_default_edges_are_the_papers():
    half = bk.default_edges(0.5)
    assert len(half) == 25 and half[1] == 500 and half[-1] == 12000
    quarter = bk.default_edges(0.25)
    assert quarter[1] == 125 and quarter[-1] == 3000
    # The paper's labels: 1-500, ..., 11501-12000.
    assert bk.range_text(half[0], half[1]) == "1-500" and bk.range_text(half[-2], half[-1]) == "11501-12000"


def test_frame_scale_snaps_real_sizes_to_the_nominal_scale(lr4, val4):
    # 427 rows become 107 at 1/4: sy = 107/427, not 0.25.
    assert any(img["lrp"]["xform"][1] != 0.25 for img in lr4["images"])
    assert bk.paper_scale(lr4) == 0.25
    assert bk.paper_scale(val4) == 1.0


@pytest.mark.parametrize("text", ["", "500", "0,500,400", "0,a,1000", "-5,10", "0,inf"])
def test_bad_edges_are_usage_errors(text):
    from lrp.errors import UsageError

    with pytest.raises(UsageError, match="--edges"):
        bk.parse_edges(text)


def test_ranges_are_half_open_lo_excluded_hi_included(val4):
    area = sorted(a["area"] for a in val4["annotations"])[5]
    edges = [0.0, area, 1e9]
    people, _ = bk.people_counts(val4, edges)
    assert people == [6, len(val4["annotations"]) - 6]
    # pycocotools agrees: the person with area == edge counts in the first bucket only.
    (lo1, hi1), (lo2, hi2) = bk.area_ranges(edges)
    assert lo1 > 0 and hi1 == area and lo2 > area and lo2 == math.nextafter(area, math.inf)


# --------------------------------------------------------------------------------------------
# Numbers


def test_bucket_values_equal_pycocotools_summarize_on_each_range(val4):
    """Per bucket, AP/AR equal pycocotools' own summarize with that range as its 'small' range."""
    edges = [0, 1000, 3000, 10000, 20000, 1e9]
    run = bk.bucket_document(val4, edges)
    for task, key in (("bbox", "detections"), ("keypoints", "poses")):
        for i, rng in enumerate(bk.area_ranges(edges)):
            if task == "bbox":
                area_rng = [[0, 1e10], rng, [0, 0], [0, 0]]
                plain = plain_cocoeval(gt_dataset(val4), val4["lrp"][key], task, area_rng)
                ap, ar = plain.stats[3], plain.stats[9]  # AP_S, AR_S at maxDets 100
            else:
                area_rng = [[0, 1e10], rng, [0, 0]]
                plain = plain_cocoeval(gt_dataset(val4), val4["lrp"][key], task, area_rng)
                ap, ar = plain.stats[3], plain.stats[8]  # AP_M, AR_M at maxDets 20
            assert run.metrics[task]["AP"][i] == ap, (task, i)
            assert run.metrics[task]["AR"][i] == ar, (task, i)
    # Real, varied numbers, not all 1 or -1.
    assert len({round(v, 6) for v in run.metrics["bbox"]["AP"]}) > 2


def test_people_counts_and_empty_buckets(val4):
    edges = bk.default_edges(1.0)  # width 2000 in the original frame
    people, with_kp = bk.people_counts(val4, edges)
    solid = [a for a in val4["annotations"] if not a["iscrowd"] and a["area"] <= edges[-1]]
    assert sum(people) == len(solid) and sum(with_kp) == sum(a["num_keypoints"] > 0 for a in solid)
    run = bk.bucket_document(val4, edges)
    for task, counts in (("bbox", people), ("keypoints", with_kp)):
        for i, n in enumerate(counts):
            assert (run.metrics[task]["AP"][i] == -1) == (n == 0), (task, i)


def test_frame_gives_lr_groups_to_the_rescaled_document(val4, lr4):
    edges = bk.default_edges(0.25)
    back = rescaled(lr4, 4)
    on_lr = bk.bucket_document(lr4, edges)
    on_back = bk.bucket_document(back, edges, frame_doc=lr4, frame_name="lr4")
    own_frame = bk.bucket_document(back, edges)
    for task in ("bbox", "keypoints"):
        for metric in ("AP", "AR"):
            assert on_back.metrics[task][metric] == pytest.approx(on_lr.metrics[task][metric], abs=1e-12)
    # The control: in its own (4x larger) frame most people fall above 3000 px^2.
    assert own_frame.metrics["bbox"]["AP"] != on_lr.metrics["bbox"]["AP"]


def test_percent_change_against_the_baseline(val4):
    worse = copy.deepcopy(val4)
    worse["lrp"]["detections"] = worse["lrp"]["detections"][::2]
    edges = [0, 2000, 10000, 1e9, 2e9]
    named = [("worse.json", worse), ("val4.json", val4)]
    report = bk.make_report(named, ["worse", "full"], baseline_index=0, frame=("worse.json", worse, "worse"), edges=edges)
    base, run = report.runs
    change = report.change(run, "bbox", "AP")
    for i, (r, b) in enumerate(zip(run.metrics["bbox"]["AP"], base.metrics["bbox"]["AP"])):
        if b > 0:
            assert change[i] == pytest.approx((r - b) / b * 100)
        else:
            assert change[i] is None
    assert change[-1] is None  # the last bucket has nobody
    assert report.change(base, "bbox", "AP") is None
    assert bk.percent_change(0.5, 0.0) is None and bk.percent_change(0.6, 0.5) == pytest.approx(20.0)


def test_paired_bootstrap_is_seeded(val4, lr4):
    edges = [0, 500, 3000]
    named = [("lr4", lr4), ("val4", val4)]
    frame = ("lr4", lr4, "LR 1/4")
    a = bk.make_report(named, ["lr", "hr"], baseline_index=0, frame=frame, edges=edges, bootstrap=20, seed=1)
    b = bk.make_report(named, ["lr", "hr"], baseline_index=0, frame=frame, edges=edges, bootstrap=20, seed=1)
    ia, ib = a.value_interval(a.runs[1], "bbox", "AP"), b.value_interval(b.runs[1], "bbox", "AP")
    assert ia == ib and all(lo <= hi for lo, hi in ia)
    # Same images in every replicate for both runs: an exact rescale changes nothing, so the
    # paired change is exactly 0 in every replicate.
    assert a.change_interval(a.runs[1], "bbox", "AP") == [(0.0, 0.0), (0.0, 0.0)]


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def docs(tmp_path, val4, lr4):
    worse = copy.deepcopy(lr4)
    worse["lrp"]["detections"] = worse["lrp"]["detections"][::2]
    worse["lrp"]["poses"] = worse["lrp"]["poses"][1::2]
    return {
        "val4": write(tmp_path, "val4.json", val4),
        "lr4": write(tmp_path, "lr4.json", lr4),
        "worse": write(tmp_path, "worse.json", worse),
    }


def test_cli_table_defaults_to_the_baselines_frame(runner, docs):
    result = run_lrp(runner, ["bucket", "--baseline", docs["lr4"], docs["val4"]])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "detection AP by area in LR 1/4" in out and "keypoint AR by area in LR 1/4" in out
    assert "-3000 " in out and "1-125" in out and "no people" in out and "Δ% original" in out
    assert "-1.000" not in out
    assert "24 by segmentation area in LR 1/4" in result.stderr and "125 px^2" in result.stderr


def test_cli_json_and_csv_agree_with_the_library(runner, docs, val4, lr4):
    result = run_lrp(runner, ["bucket", "-q", "--format", "json", "--baseline", docs["lr4"], docs["worse"]])
    assert result.exit_code == 0 and result.stderr == ""
    data = load_json(result.stdout)
    assert data["edges"] == bk.default_edges(0.25) and data["baseline"] == "LR 1/4 [lr4.json]"
    assert [d["baseline"] for d in data["documents"]] == [True, False]
    lib = bk.bucket_document(lr4, data["edges"])
    assert data["documents"][0]["metrics"]["bbox"]["AP"] == [None if v < 0 else v for v in lib.metrics["bbox"]["AP"]]
    change = data["documents"][1]["change_pct"]["keypoints"]["AR"]
    assert any(c is not None and c < 0 for c in change)  # half the poses gone: recall drops
    empty = [i for i, b in enumerate(data["buckets"]) if b["people"] == 0]
    assert empty and all(data["documents"][0]["metrics"]["bbox"]["AP"][i] is None for i in empty)
    rows = list(csv.DictReader(io.StringIO(run_lrp(runner, ["bucket", "-q", "--format", "csv", "--baseline", docs["lr4"], docs["worse"]]).stdout)))
    assert len(rows) == 2 * 24
    assert rows[0]["bucket"] == "1" and rows[0]["baseline"] == "1" and rows[24]["baseline"] == "0"
    assert rows[24]["keypoints.AR.change_pct"] == ("" if change[0] is None else repr(change[0]))


def test_cli_scale_edges_and_frame_options(runner, docs):
    half = load_json(run_lrp(runner, ["bucket", "-q", "--format", "json", "--scale", "0.5", docs["val4"]]).stdout)
    assert half["edges"][1] == 500 and len(half["buckets"]) == 24 and half["baseline"] is None
    custom = load_json(run_lrp(runner, ["bucket", "-q", "--format", "json", "--edges", "0,100,1000", docs["val4"], "--frame", docs["lr4"]]).stdout)
    assert [b["area"] for b in custom["buckets"]] == [[0, 100], [100, 1000]]
    assert custom["frame"] == "LR 1/4"
    both = run_lrp(runner, ["bucket", "--scale", "0.5", "--edges", "0,1", docs["val4"]])
    assert both.exit_code == 2 and "not both" in both.stderr
    bad = run_lrp(runner, ["bucket", "--edges", "5,1", docs["val4"]])
    assert bad.exit_code == 2 and "--edges" in bad.stderr


def test_cli_no_people_in_any_bucket(runner, docs):
    result = run_lrp(runner, ["bucket", "-q", "--format", "markdown", "--edges", "1e8,2e8", "--baseline", docs["lr4"], docs["val4"]])
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1 ")]
    assert rows and all("no people" in r and "| 0 |" in r for r in rows)


def test_cli_plot_writes_a_png(runner, docs, tmp_path):
    from PIL import Image

    png = tmp_path / "charts" / "buckets.png"
    result = run_lrp(runner, ["bucket", "-q", "--baseline", docs["lr4"], docs["worse"], docs["val4"], "--plot", str(png)])
    assert result.exit_code == 0, result.stderr
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 500 and im.height > 500
        # Bars were drawn: the chart is not a blank canvas.
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 10
    assert not list(png.parent.glob(".*.part"))  # atomic write left nothing behind


def test_cli_bad_inputs(runner, docs, tmp_path, val4):
    other = copy.deepcopy(val4)
    other["annotations"] = other["annotations"][1:]
    result = run_lrp(runner, ["bucket", docs["val4"], "--frame", write(tmp_path, "other.json", other)])
    assert result.exit_code == 1 and "other.json: size frame has different annotation ids" in result.stderr
    no_results = copy.deepcopy(val4)
    no_results["lrp"]["detections"] = no_results["lrp"]["poses"] = []
    result = run_lrp(runner, ["bucket", write(tmp_path, "none.json", no_results)])
    assert result.exit_code == 1 and "has no lrp.detections or lrp.poses" in result.stderr
    result = run_lrp(runner, ["bucket", "--format", "yaml", docs["val4"]])
    assert result.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    result = run_lrp(runner, ["bucket", "--baseline", str(bad), docs["val4"]])
    assert result.exit_code == 1 and "bad.json: not valid JSON" in result.stderr


def test_cli_oracle_changes_are_zero_across_frames(runner, docs):
    result = run_lrp(runner, ["bucket", "-q", "--oracle", "--format", "json", "--baseline", docs["lr4"], docs["val4"]])
    data = load_json(result.stdout)
    for task in ("bbox", "keypoints"):
        changes = [c for c in data["documents"][1]["change_pct"][task]["AP"] if c is not None]
        assert changes and all(abs(c) < 1e-9 for c in changes)


def test_table_folds_runs_of_empty_buckets(runner, docs):
    """The terminal table gives a run of empty buckets one row; JSON keeps all 24."""
    assert bk.bucket_rows([3, 0, 0, 0, 5, 0, 2, 0, 0]) == [(0, 0), (1, 3), (4, 4), (5, 5), (6, 6), (7, 8)]
    data = load_json(run_lrp(runner, ["bucket", "-q", "--format", "json", "--baseline", docs["lr4"], docs["val4"]]).stdout)
    counts = [b["people"] for b in data["buckets"]]
    rows = bk.bucket_rows(counts)
    assert len(rows) < 24 and any(a != b for a, b in rows)  # coco-val-4 at 1/4 has empty runs
    md = run_lrp(runner, ["bucket", "-q", "--format", "markdown", "--baseline", docs["lr4"], docs["val4"]]).stdout
    first_table = md.split("### ")[1]
    body = [line for line in first_table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(body) == len(rows)
    for line, (a, b) in zip(body, rows):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == (str(a + 1) if a == b else f"{a + 1}-{b + 1}")
        assert cells[2] == (str(counts[a]) if a == b else "0")
        if a != b:
            assert cells[1] == bk.range_text(data["edges"][a], data["edges"][b + 1])
            assert all(c == "no people" for c in cells[3:])
