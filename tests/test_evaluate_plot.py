"""`lrp evaluate --plot`: the charted numbers are the table's, x comes from each document's
history, --label texts make the lines, undefined values are gaps, and bad input fails in one
line before anything is written. Built on the embedded sample (no real data needed)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from lrp.cocoeval import oracle_results
from lrp.document import add_history
from lrp.errors import LrpError, UsageError
from lrp.evaluate import Evaluation, evaluate_document
from lrp.evaluate_plot import plot_series
from tests.conftest import run_lrp


@pytest.fixture(scope="module")
def sample():
    from lrp.sample import sample_document

    return sample_document()


def posed(doc: dict, noise: float, seed: int, input_size=(192, 256), steps=()) -> dict:
    """GT-as-results poses and boxes moved by seeded noise (more noise, lower AP), and the
    history of a pose step at `input_size` after `steps` ((command, args) pairs)."""
    d = copy.deepcopy(doc)
    rng = np.random.default_rng(seed)
    poses = oracle_results(d, "keypoints")
    for p in poses:
        k = np.array(p["keypoints"], dtype=float).reshape(-1, 3)
        k[:, :2] += rng.normal(0, noise, size=(len(k), 2))
        p["keypoints"] = k.ravel().tolist()
        p["score"] = float(rng.uniform(0.2, 1.0))
    boxes = oracle_results(d, "bbox")
    for b in boxes:
        x, y, w, h = b["bbox"]
        b["bbox"] = [x + rng.normal(0, noise * 0.2), y + rng.normal(0, noise * 0.2), w, h]
        b["score"] = float(rng.uniform(0.2, 1.0))
    d["lrp"]["poses"], d["lrp"]["detections"] = poses, boxes
    for command, args in steps:
        add_history(d, command, args)
    add_history(d, "pose", {"model": "hrnet-w32", "boxes": "gt", "input_size": list(input_size) if input_size else input_size})
    return d


def write(tmp_path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def check_png(path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 300
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # not a blank canvas
    assert not list(path.parent.glob(".*.part"))


def nothing_written(tmp_path) -> bool:
    return not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*.part"))


# Three sizes of one model (one line), and one other model at one size.
SIZES = [(48, 64), (192, 256), (96, 128)]  # not in x order: the line must sort its points


@pytest.fixture(scope="module")
def docs(sample, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plot")
    paths = [write(tmp, f"hrnet{i}.json", posed(sample, noise, i, size)) for i, (size, noise) in enumerate(zip(SIZES, (12.0, 1.0, 5.0)))]
    paths.append(write(tmp, "other.json", posed(sample, 3.0, 9, (96, 128))))
    return paths


LABELS = ["hrnet", "hrnet", "hrnet", "other"]


def label_args(labels):
    return [a for lbl in labels for a in ("--label", lbl)]


def test_series_are_the_json_values_against_the_input_size(runner, docs, tmp_path):
    png = tmp_path / "fig1.png"
    result = run_lrp(runner, ["evaluate", "-q", "--format", "json", *label_args(LABELS), *docs, "--plot", str(png), "--plot-x", "pose.input_size"])
    assert result.exit_code == 0, result.stderr
    check_png(png)
    data = json.loads(result.stdout)["documents"]
    assert [d["file"] for d in data] == docs
    # Not a degenerate case: the documents' keypoint AP differ.
    assert len({d["metrics"]["keypoints"]["AP"] for d in data}) == len(docs)
    # What the chart must show, from the JSON: x = w*h of the pose step's input_size, y = AP.
    expected = {}
    for task in ("bbox", "keypoints"):
        lines: dict[str, list] = {}
        for lbl, d in zip(LABELS, data):
            (pose,) = [h for h in d["history"] if h["command"] == "pose"]
            w, h = pose["args"]["input_size"]
            lines.setdefault(lbl, []).append((w * h, d["metrics"][task]["AP"]))
        expected[task] = [(lbl, sorted(points)) for lbl, points in lines.items()]
    evaluations = [evaluate_document(json.loads(open(p).read()), name=p) for p in docs]
    series = plot_series(evaluations, LABELS, "pose.input_size", "AP")
    assert series == expected
    assert [x for x, _ in series["keypoints"][0][1]] == sorted(w * h for w, h in SIZES)


def test_table_output_is_unchanged_by_plot(runner, docs, tmp_path):
    for fmt in ("json", "csv", "markdown"):
        args = ["evaluate", "-q", "--format", fmt, *label_args(LABELS), *docs]
        plain = run_lrp(runner, args)
        plotted = run_lrp(runner, [*args, "--plot", str(tmp_path / f"{fmt}.png"), "--plot-x", "pose.input_size"])
        assert plain.exit_code == plotted.exit_code == 0
        assert plotted.stdout == plain.stdout
        check_png(tmp_path / f"{fmt}.png")
    # The rows of a repeated --label are told apart by their file (the chart draws them as one line).
    assert "| hrnet [hrnet0.json] |" in plain.stdout and "| other |" in plain.stdout


def test_terminal_table_keeps_the_file_of_a_repeated_label(runner, docs):
    # "[hrnet0.json]" is not rich markup: it must reach the terminal as it is.
    result = run_lrp(runner, ["evaluate", "-q", *label_args(LABELS), *docs])
    assert result.exit_code == 0
    assert "hrnet [hrnet0.json]" in result.stdout and "hrnet [hrnet2.json]" in result.stdout


def test_without_label_every_document_is_a_line_of_its_own(docs):
    evaluations = [evaluate_document(json.loads(open(p).read()), name=p, label=f"row{i}") for i, p in enumerate(docs)]
    series = plot_series(evaluations, None, "pose.input_size", "AR")
    assert [lbl for lbl, _ in series["keypoints"]] == ["row0", "row1", "row2", "row3"]
    for (_, points), ev, (w, h) in zip(series["keypoints"], evaluations, [*SIZES, (96, 128)]):
        assert points == [(w * h, ev.metrics["keypoints"]["AR"])]
    # The labels group only when given: the same two labels make two lines of two points.
    series = plot_series(evaluations, ["a", "b", "a", "b"], "pose.input_size", "keypoints.AP_M")
    assert list(series) == ["keypoints"]
    assert [(lbl, [x for x, _ in pts]) for lbl, pts in series["keypoints"]] == [("a", [48 * 64, 96 * 128]), ("b", [96 * 128, 192 * 256])]


def test_numbers_last_step_and_bars(sample, tmp_path, runner):
    # x is the LAST entry of the step: a document degraded twice is placed by its second scale.
    evs = []
    for i, scale in enumerate((0.5, 0.25)):
        doc = posed(sample, 2.0 + 4 * i, i, steps=[("degrade", {"scale": 0.9}), ("degrade", {"scale": scale})])
        evs.append(evaluate_document(doc, name=f"d{i}.json", label=f"d{i}"))
    series = plot_series(evs, ["chain", "chain"], "degrade.scale", "AP")
    assert series["keypoints"] == [("chain", [(0.25, evs[1].metrics["keypoints"]["AP"]), (0.5, evs[0].metrics["keypoints"]["AP"])])]
    # No --plot-x: a bar per document, under its row label.
    bars = plot_series(evs, None, None, "AR")
    assert bars["bbox"] == [("d0", [(None, evs[0].metrics["bbox"]["AR"])]), ("d1", [(None, evs[1].metrics["bbox"]["AR"])])]
    paths = [write(tmp_path, f"d{i}.json", posed(sample, 2.0 + 4 * i, i, steps=[("degrade", {"scale": s})])) for i, s in enumerate((0.5, 0.25))]
    for png, extra in ((tmp_path / "bars.png", []), (tmp_path / "scale.png", ["--plot-x", "degrade.scale"])):
        result = run_lrp(runner, ["evaluate", "-q", *paths, "--plot", str(png), "--plot-metric", "AR", *extra])
        assert result.exit_code == 0, result.stderr
        check_png(png)


def test_undefined_values_are_gaps(sample, tmp_path, runner):
    # No person below 32^2 px: pycocotools' AP_S is -1, charted as NaN (not -1, not 0).
    big = copy.deepcopy(sample)
    big["annotations"] = [a for a in big["annotations"] if a["area"] > 32**2]
    doc = posed(big, 1.0, 0)
    ev = evaluate_document(doc, name="big.json")
    assert ev.metrics["bbox"]["AP_S"] == -1 and ev.metrics["bbox"]["AP_M"] >= 0
    other = evaluate_document(posed(sample, 1.0, 1, (96, 128)), name="all.json")
    assert other.metrics["bbox"]["AP_S"] >= 0
    series = plot_series([ev, other], ["x", "x"], "pose.input_size", "bbox.AP_S")
    ((label, [(x1, y1), (x2, y2)]),) = series["bbox"]
    assert (x1, x2) == (96 * 128, 192 * 256) and y1 == other.metrics["bbox"]["AP_S"] and math.isnan(y2)
    ((_, [(_, bar)]), _) = plot_series([ev, other], None, None, "bbox.AP_S")["bbox"]
    assert math.isnan(bar)
    # A hand-made evaluation of undefined values only draws too (empty panels, n/a bars).
    blank = Evaluation(name="blank.json", label="blank", history=[], box_source="gt", oracle=False, size_from=None,
                       metrics={"keypoints": {m: -1.0 for m in ev.metrics["keypoints"]}})
    assert math.isnan(plot_series([blank], None, None, "AP")["keypoints"][0][1][0][1])
    path = write(tmp_path, "big.json", doc)
    for png, extra in ((tmp_path / "gap.png", ["--plot-x", "pose.input_size"]), (tmp_path / "gapbar.png", [])):
        result = run_lrp(runner, ["evaluate", "-q", path, "--plot", str(png), "--plot-metric", "bbox.AP_S", *extra])
        assert result.exit_code == 0, result.stderr
        check_png(png)


# --------------------------------------------------------------------------------------------
# Bad input: one line, the right exit code, no chart and no table


def bad_doc(sample, tmp_path, name: str, **kwargs) -> str:
    return write(tmp_path, name, posed(sample, 1.0, 0, **kwargs))


def test_bad_x_values_fail_in_one_line_and_write_nothing(sample, tmp_path, runner):
    ok = bad_doc(sample, tmp_path, "ok.json")
    no_arg = bad_doc(sample, tmp_path, "nosize.json", input_size=None)
    doc = json.loads(open(no_arg).read())
    del doc["lrp"]["history"][-1]["args"]["input_size"]
    open(no_arg, "w").write(json.dumps(doc))
    word = bad_doc(sample, tmp_path, "word.json", steps=[("superres", {"model": "bicubic", "scale": "x4"})])
    triple = bad_doc(sample, tmp_path, "triple.json", input_size=(1, 2, 3))
    number = bad_doc(sample, tmp_path, "number.json", steps=[("degrade", {"scale": 0.5})])
    same = bad_doc(sample, tmp_path, "same.json")
    turned = bad_doc(sample, tmp_path, "turned.json", input_size=(256, 192))
    png = tmp_path / "x.png"
    cases = [
        ([ok, "--plot-x", "degrade.scale"], f"{ok}: --plot-x degrade.scale: the history has no degrade step (its steps: pose)"),
        ([no_arg, "--plot-x", "pose.input_size"],
         f"{no_arg}: --plot-x pose.input_size: its last pose step has no argument 'input_size' (its arguments: model, boxes)"),
        ([word, "--plot-x", "superres.scale"], f"{word}: --plot-x superres.scale: 'x4' is neither a number nor a [w, h] pair"),
        ([triple, "--plot-x", "pose.input_size"], f"{triple}: --plot-x pose.input_size: [1, 2, 3] is neither a number nor a [w, h] pair"),
        ([ok, "--plot-x", "pose.model"], f"{ok}: --plot-x pose.model: 'hrnet-w32' is neither a number nor a [w, h] pair"),
        ([ok, same, "--label", "a", "--label", "a", "--plot-x", "pose.input_size"],
         f"--plot-x pose.input_size: {ok} and {same} are both at 192x256 on the line 'a'; give them different --label texts"),
        ([ok, turned, "--label", "a", "--label", "a", "--plot-x", "pose.input_size"],
         f"--plot-x pose.input_size: {ok} and {turned} are both at 192x256 and 256x192 (49152 px each) on the line 'a'; "
         "give them different --label texts"),
        ([number, ok, "--plot-x", "pose.input_size"], None),  # both have input sizes: fine
        ([number, "--plot-x", "degrade.scale", ok], f"{ok}: --plot-x degrade.scale: the history has no degrade step (its steps: pose)"),
    ]
    for args, message in cases:
        result = run_lrp(runner, ["evaluate", "-q", *args, "--plot", str(png)])
        if message is None:
            assert result.exit_code == 0, result.stderr
            png.unlink()
            continue
        assert (result.exit_code, result.stderr) == (1, f"lrp evaluate: error: {message}\n"), args
        assert result.stdout == "" and nothing_written(tmp_path), args


def test_mixed_pairs_and_numbers_cannot_share_an_axis(sample):
    a = evaluate_document(posed(sample, 1.0, 0, steps=[("superres", {"scale": 4})]), name="a.json")
    b = evaluate_document(posed(sample, 1.0, 0), name="b.json")
    b.history = [{"command": "superres", "args": {"scale": [4, 4]}}]
    with pytest.raises(LrpError) as caught:
        plot_series([a, b], None, "superres.scale", "AP")
    assert str(caught.value) == "--plot-x superres.scale: b.json has a [w, h] pair, a.json a number; one axis cannot show both"


def test_plot_usage_errors(sample, tmp_path, runner):
    ok = bad_doc(sample, tmp_path, "ok.json")
    png = str(tmp_path / "u.png")
    metrics = "AP, AP50, AP75, AP_S, AP_M, AP_L, AR1, AR10, AR, AR_S, AR_M, AR_L, AR50, AR75"
    kp = "AP, AP50, AP75, AP_M, AP_L, AR, AR50, AR75, AR_M, AR_L"
    cases = [
        (["--plot-x", "pose.input_size"], "--plot-x draws nothing without --plot FILE.png"),
        (["--plot-metric", "AR"], "--plot-metric draws nothing without --plot FILE.png"),
        (["--plot", png, "--plot-metric", "mAP"], f"--plot-metric 'mAP': unknown metric 'mAP' (known: {metrics})"),
        (["--plot", png, "--plot-metric", "keypoints.AP_S"], f"--plot-metric 'keypoints.AP_S': unknown metric 'AP_S' (known: {kp})"),
        (["--plot", png, "--plot-metric", "pose.AP"], "--plot-metric 'pose.AP': unknown task 'pose' (known: bbox, segm, keypoints)"),
        (["--plot", png, "--plot-metric", "AP_S"],
         f"--plot-metric AP_S: keypoints has no AP_S (its metrics: {kp}); bbox.AP_S draws the bbox panel only"),
        (["--plot", png, "--plot-metric", "segm.AP"], "--plot-metric segm.AP: no document has segm results (evaluated: bbox, keypoints)"),
        (["--plot", png, "--plot-x", "input_size"],
         "--plot-x 'input_size': expected STEP.ARG, e.g. pose.input_size, degrade.scale or superres.scale"),
    ]
    for args, message in cases:
        result = run_lrp(runner, ["evaluate", "-q", ok, *args])
        assert (result.exit_code, result.stderr) == (2, f"lrp evaluate: error: {message}\n"), args
        assert result.stdout == "" and nothing_written(tmp_path), args
    # Metric names are matched as --fail-under matches them: case does not matter.
    result = run_lrp(runner, ["evaluate", "-q", ok, "--plot", png, "--plot-metric", "ap_m"])
    assert result.exit_code == 0, result.stderr
    with pytest.raises(UsageError, match="unknown metric"):
        plot_series([evaluate_document(json.loads(open(ok).read()), name=ok)], None, None, "APX")


def test_plot_file_rules_are_buckets(sample, tmp_path, runner):
    """As `lrp bucket --plot`: an input or a folder is refused; a new folder is made."""
    ok = bad_doc(sample, tmp_path, "ok.json")
    result = run_lrp(runner, ["evaluate", "-q", ok, "--plot", ok])
    assert (result.exit_code, result.stderr) == (2, f"lrp evaluate: error: --plot {ok}: is an input of this command; refusing to write over it\n")
    result = run_lrp(runner, ["evaluate", "-q", ok, "--plot", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (2, f"lrp evaluate: error: --plot {tmp_path}: is a folder; give a file name\n")
    nested = tmp_path / "charts" / "new" / "fig.png"
    result = run_lrp(runner, ["evaluate", ok, "--plot", str(nested)])
    assert result.exit_code == 0 and f"chart: {nested}" in result.stderr
    check_png(nested)


def test_a_hand_edited_history_still_labels():
    """Odd args (a scale as text, a noise that is no number) give the bare step name, not a crash."""
    from lrp.labels import history_label

    history = [{"command": "degrade", "args": {"scale": "0.25"}}, {"command": "superres", "args": {"model": "bicubic", "scale": 4}},
               {"command": "degrade", "args": {"scale": 0.5, "noise": "lots"}}, "not a step"]
    assert history_label(history) == "degrade > bicubic x4 > degrade"
    assert history_label([{"command": "degrade", "args": {"scale": 0.25}}]) == "LR 1/4"


def test_close_ticks_share_a_label():
    from lrp.evaluate_plot import _merged_ticks

    ticks = {192 * 192: ["192x192"], 256 * 256: ["256x256"], 257 * 257: ["257x257"], 513 * 513: ["513x513"]}
    assert _merged_ticks(ticks, log=True) == ([192 * 192, 256 * 256, 513 * 513], ["192x192", "256x256/257x257", "513x513"])
    assert _merged_ticks({0.25: ["0.25"], 0.5: ["0.5"]}, log=False) == ([0.25, 0.5], ["0.25", "0.5"])
