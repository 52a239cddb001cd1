"""`lrp report`: the HTML contact sheet is self-contained, holds the evaluate numbers and the
largest per-person OKS changes, and renders in headless Chromium with every image loaded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from lrp.document import adopt
from lrp.draw import prepare
from lrp.report import by_bucket, keypoint_changes
from tests.conftest import run_lrp
from tests.test_draw import chain  # noqa: F401  (the fixture: the sample at 1/4 and full size, with poses)


@pytest.fixture(scope="module")
def page(chain, tmp_path_factory):  # noqa: F811
    from typer.testing import CliRunner

    root, (lr, hr) = chain
    out = tmp_path_factory.mktemp("report") / "r"
    res = run_lrp(CliRunner(), ["report", lr, hr, "--out-dir", str(out), "--per-bucket", "2"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str((out / "index.html").resolve())
    return out, (lr, hr)


def test_page_is_self_contained_and_holds_the_evaluate_numbers(page):
    from lrp.evaluate import evaluate_document

    out, (lr, hr) = page
    text = (out / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert sources and "<script" not in text and "url(" not in text
    for s in sources:
        assert not re.match(r"^[a-z]+:|^/", s), s  # relative paths only: no scheme, no absolute path
        assert (out / s).is_file(), s
    lr_doc, hr_doc = (adopt(json.loads(open(p).read()), p) for p in (lr, hr))
    ev = evaluate_document(hr_doc, size_doc=lr_doc, size_name=lr)
    for metric in ("AP", "AR"):
        assert f'<td class="num">{ev.metrics["keypoints"][metric]:.3f}</td>' in text
    assert "bucket.png" in sources


def test_gains_and_losses_are_the_extremes_of_each_bucket(page):
    out, (lr, hr) = page
    docs = [(p, adopt(json.loads(open(p).read()), p)) for p in (lr, hr)]
    base, run = prepare(docs)
    changes = keypoint_changes(base, run)
    assert changes and all(0 <= c.before <= 1 and 0 <= c.after <= 1 for c in changes)
    edges = [0, 150, 600, 1e9]
    groups = by_bucket(changes, edges, 2)
    assert sum(n for *_, n in groups) == len(changes)
    bounds = [(lo, hi) for lo, hi in zip(edges, edges[1:]) if any(lo < c.area <= hi for c in changes)]
    assert len(groups) == len(bounds)  # empty buckets collapse
    for (lo, hi), (text, gains, losses, n) in zip(bounds, groups):
        inside = [c for c in changes if lo < c.area <= hi]
        assert n == len(inside)
        ups = sorted((c.gain for c in inside if c.gain >= 0.0005), reverse=True)[:2]
        downs = sorted(c.gain for c in inside if c.gain <= -0.0005)[:2]
        assert [c.gain for c in gains] == ups and [c.gain for c in losses] == downs
    assert any(g for _, g, _, _ in groups) and any(l for _, _, l, _ in groups)
    # Every person shown on the page has a strip, and the page names their OKS before and after.
    text = (out / "index.html").read_text()
    shown = re.findall(r"image (\d+), person (\d+), area [^:]+: OKS ([0-9.]+) → ([0-9.]+)", text)
    assert shown
    by_id = {(c.image_id, c.ann_id): c for c in changes}
    for iid, aid, before, after in shown:
        c = by_id[int(iid), int(aid)]
        assert (before, after) == (f"{c.before:.3f}", f"{c.after:.3f}")
        assert (out / "strips" / f"{iid}-{aid}.png").is_file()


def test_report_bad_inputs(runner, chain, tmp_path):  # noqa: F811
    root, (lr, hr) = chain
    gt_only = json.loads(open(hr).read())
    gt_only["lrp"]["poses"] = gt_only["lrp"]["detections"] = []
    (tmp_path / "gt.json").write_text(json.dumps(gt_only))
    cases = [
        (["report", lr, "--out-dir", str(tmp_path / "o")], 2, "at least two documents"),
        (["report", lr, hr], 2, "--out-dir DIR is required"),
        (["report", lr, hr, "--out-dir", str(root / "sample/images")], 2, "image folder"),
        (["report", str(tmp_path / "gt.json"), hr, "--out-dir", str(tmp_path / "o")], 1, "the baseline has no"),
        (["report", lr, str(tmp_path / "missing.json"), "--out-dir", str(tmp_path / "o")], 1, "missing.json: no such file"),
    ]
    for args, code, text in cases:
        res = run_lrp(runner, args)
        assert res.exit_code == code, (args, res.stderr)
        assert res.stderr.startswith("lrp report: error: ") and text in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is missing, and CI must have it (make test installs the Debian package)")
    pytest.skip("chromium is not installed (Debian package `chromium`; `make test` installs it when run as root)")


def _run_chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=180)


def test_page_renders_in_headless_chromium_with_every_image_loaded(page, tmp_path):
    out, _ = page
    text = (out / "index.html").read_text()
    n_images = text.count("<img ")
    assert n_images >= 2
    # A copy beside the page (same relative paths) with a probe that counts the loaded images.
    probe = (
        "<script>window.addEventListener('load', () => { const all = [...document.images];"
        " const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;"
        " document.body.setAttribute('data-loaded', ok + '/' + all.length); });</script></body>"
    )
    check = out / "probe.html"
    check.write_text(text.replace("</body>", probe))
    try:
        dom = _run_chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", check.as_uri())
    finally:
        check.unlink()
    found = re.search(r'data-loaded="(\d+)/(\d+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    assert found.groups() == (str(n_images), str(n_images))

    shot = tmp_path / "shot.png"
    _run_chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", (out / "index.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1600, 1200)
    # Not blank: text, tables and pictures give many colours and a spread of brightness.
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200
