"""Terminal tables fit COLUMNS by shortening labels and dropping whole columns, never by cutting a
number; markdown, csv and json keep every column and digit."""

from __future__ import annotations

import json
import re

import pytest

from lrp.tables import Table, layout, render_terminal
from tests.conftest import run_lrp
from tests.test_draw import chain  # noqa: F401  (the sample at 1/4 and full size, with poses and boxes)

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?%?")


def _check_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line.rstrip()) <= width, (width, line)
    # An ellipsis never follows a digit, a point or a sign: numbers are whole or absent.
    assert not re.search(r"[\d.+\-]…", text), text


def _invoke(runner, args, columns: int):
    from lrp.cli import app

    return runner.invoke(app, args, env={"COLUMNS": str(columns)}, catch_exceptions=False)


@pytest.mark.parametrize("columns", [80, 200])
def test_evaluate_table_fits_and_shows_every_digit(runner, chain, columns):  # noqa: F811
    root, (lr, hr) = chain
    long_label = "LR 1/4 after a very long chain of steps"
    args = ["evaluate", "-q", lr, hr, "--size-from", lr, "--label", long_label, "--label", "HR"]
    table = _invoke(runner, args, columns)
    assert table.exit_code == 0, table.stderr
    _check_fits(table.stdout, columns)
    data = json.loads(run_lrp(runner, args + ["--format", "json"]).stdout)
    shown = table.stdout
    for doc in data["documents"]:
        for task, metrics in doc["metrics"].items():
            # Every paper column is there at 80 columns; AP50/AP75 join it when there is room.
            for k in ("AP", "AR", "AP_M", "AR_L") + (("AP50", "AP75") if columns == 200 and task == "bbox" else ()):
                value = metrics[k]
                assert (f"{value:.3f}" if value is not None else "n/a") in shown, (task, k)
    headers = {line.split()[0]: line.split() for line in shown.splitlines() if line.strip().startswith("document")}
    assert "AR_L" in headers["document"]
    if columns == 200:
        assert long_label in shown and "AP50" in shown and "AP75" in shown
    # markdown keeps the paper's columns only, csv/json every metric at full precision
    md = run_lrp(runner, args + ["--format", "markdown"]).stdout
    assert "AP50" not in md and long_label in md


def test_narrow_terminal_drops_whole_columns_and_says_so(runner, chain):  # noqa: F811
    root, (lr, hr) = chain
    res = _invoke(runner, ["evaluate", "-q", hr, "--label", "a label much longer than the terminal allows"], 50)
    assert res.exit_code == 0
    _check_fits(res.stdout, 50)
    assert "not shown at 50 columns:" in res.stdout
    dropped = re.search(r"not shown at 50 columns: ([^;]+);", res.stdout).group(1).split(", ")
    assert "AR_L" in dropped and "AP" not in dropped
    assert "a label much" in res.stdout and "…" in res.stdout  # the label was shortened, not the numbers


@pytest.mark.parametrize("columns", [80, 200])
def test_bucket_and_weights_list_fit(runner, chain, columns, tmp_path, monkeypatch):  # noqa: F811
    root, (lr, hr) = chain
    res = _invoke(runner, ["bucket", "-q", "--baseline", lr, hr, "--edges", "0,100,1000,100000"], columns)
    assert res.exit_code == 0, res.stderr
    _check_fits(res.stdout, columns)
    data = json.loads(run_lrp(runner, ["bucket", "-q", "--baseline", lr, hr, "--edges", "0,100,1000,100000", "--format", "json"]).stdout)
    for v in data["documents"][0]["metrics"]["keypoints"]["AP"]:
        assert v is None or f"{v:.3f}" in res.stdout
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path))
    compact = _invoke(runner, ["weights", "list"], columns)
    assert compact.exit_code == 0
    _check_fits(compact.stdout, columns)
    for name in ("bicubic", "realsr-df2k-x4", "movenet-thunder", "srmdnf-x4"):
        assert re.search(rf"^\s+{re.escape(name)}\s", compact.stdout, re.M), name  # names are never shortened
    assert "sha256" not in compact.stdout.splitlines()[2]
    full = _invoke(runner, ["weights", "list", "--long"], columns)
    assert full.exit_code == 0 and "sha256" in full.stdout and "licence" in full.stdout


def test_layout_never_narrows_a_number_column_below_its_values():
    t = Table("t", ["document", "AP", "a very long header", "AR"], [["x" * 40, 0.123456, 12345.0, None]])
    for width in (200, 60, 30, 20, 5):
        lay = layout(t, width)
        for i, w in zip(lay.keep, lay.widths):
            if i > 0:
                assert w >= len(f"{t.rows[0][i]:.3f}" if t.rows[0][i] is not None else "n/a")
        assert 0 in lay.keep and 1 in lay.keep  # labels and the first value always stay
    assert layout(t, None).dropped == [] and layout(t, 200).headers == t.columns
    import io

    buf = io.StringIO()
    render_terminal([t], buf, width=30)
    _check_fits(buf.getvalue(), 30)
