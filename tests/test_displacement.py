"""`lrp pose --record-argmax` and `lrp displacement` (CAL Fig. 5).

The codecs' recorded peaks are held to an independent reading (the argmax cell moved by one cell
moves the recorded point by exactly `lrp_cell` image pixels; the plain codecs decode to the peak
itself); the histogram to displacements planted in a hand-made document. Random weights: plumbing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrp.document import adopt
from lrp.codecs import CODECS, PoseNetCodec, SimCCCodec
from lrp.topdown import TopDown, box_to_center_scale, clean_gt_box
from tests.conftest import run_lrp
from test_pose import tiny_model, val4_doc  # noqa: F401  (fixtures)

CENTER = np.array([[120.0, 90.0], [40.0, 300.0]])
SCALE = np.array([[0.6, 0.8], [1.2, 1.6]])  # boxes of 120x160 and 240x320 image pixels


def _peaks(n, k, h, w, at):
    maps = np.random.default_rng(1).random((n, k, h, w)).astype(np.float32) * 0.5
    for j, (x, y) in enumerate(at):
        maps[:, j, y, x] = 2.0
    return maps


@pytest.mark.parametrize("name", ["standard", "dark", "udp", "plain", "maxpool"])
def test_heatmap_codecs_record_the_peak_cell_and_its_size(name):
    codec = CODECS[name]()
    w, h = 12, 16
    a = codec.argmax(_peaks(2, 2, h, w, [(3, 5), (4, 9)]), CENTER, SCALE, (48, 64))
    b = codec.argmax(_peaks(2, 2, h, w, [(4, 5), (4, 10)]), CENTER, SCALE, (48, 64))
    cell = SCALE[:, 0] * 200 / ((w - 1) if codec.udp else w)
    np.testing.assert_allclose(a[:, :, 2], cell[:, None] * np.ones((1, 2)))
    np.testing.assert_allclose(b[:, 0, 0] - a[:, 0, 0], cell, rtol=1e-5)  # one cell right
    np.testing.assert_allclose(b[:, 1, 1] - a[:, 1, 1], SCALE[:, 1] * 200 / ((h - 1) if codec.udp else h), rtol=1e-5)  # one down
    # the plain argmax decodes to the peak itself
    np.testing.assert_allclose(CODECS["plain"]().decode(_peaks(2, 2, h, w, [(3, 5), (4, 9)]), CENTER, SCALE, (48, 64))[..., :2],
                               CODECS["plain"]().argmax(_peaks(2, 2, h, w, [(3, 5), (4, 9)]), CENTER, SCALE, (48, 64))[..., :2])


def test_posenet_peak_is_its_plain_decode_and_cells_are_the_stride():
    k, side = 17, 9  # 129-pixel input: stride 16
    rng = np.random.default_rng(2)
    out = np.concatenate([_peaks(2, k, side, side, [(j % side, (2 * j) % side) for j in range(k)]),
                          rng.standard_normal((2, 2 * k, side, side)).astype(np.float32) * 8], axis=1)
    peak = PoseNetCodec().argmax(out, CENTER, SCALE, (129, 129))
    plain = PoseNetCodec(offsets=False).decode(out, CENTER, SCALE, (129, 129))
    np.testing.assert_allclose(peak[..., :2], plain[..., :2])
    np.testing.assert_allclose(peak[:, 0, 2], SCALE[:, 0] * 200 * 16 / 129)
    offset = PoseNetCodec().decode(out, CENTER, SCALE, (129, 129))
    assert np.abs(offset[..., :2] - plain[..., :2]).max() > 1  # the offsets do move the points


def test_simcc_peak_is_its_decode():
    rng = np.random.default_rng(3)
    x, y = rng.random((2, 17, 96)).astype(np.float32), rng.random((2, 17, 128)).astype(np.float32)
    codec = SimCCCodec()
    np.testing.assert_allclose(codec.argmax((x, y), CENTER, SCALE, (48, 64))[..., :2], codec.decode((x, y), CENTER, SCALE, (48, 64))[..., :2])


class _Planted(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out.expand(len(x), *self.out.shape[1:])


def test_topdown_adds_the_peak_columns_only_when_asked():
    maps = torch.from_numpy(_peaks(1, 17, 16, 12, [(j % 12, j % 16) for j in range(17)]))
    runner = TopDown(_Planted(maps), (48, 64), flip=False, decoder="standard")
    center, scale = runner.centers_scales([[10.0, 20.0, 30.0, 40.0]])
    assert runner.predict(torch.zeros(1, 3, 64, 48), center, scale).shape == (1, 17, 3)
    runner.record_argmax = True
    got = runner.predict(torch.zeros(1, 3, 64, 48), center, scale)
    assert got.shape == (1, 17, 6)
    np.testing.assert_allclose(got[..., 3:], CODECS["standard"]().argmax(maps.numpy(), center, scale, (48, 64)))


def test_pose_records_argmax_loadable_by_pycocotools(runner, tiny_model, val4_doc, tmp_path):
    from pycocotools.coco import COCO

    path, doc = val4_doc
    res = run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", "--model", tiny_model, "--record-argmax"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    poses = out["lrp"]["poses"]
    assert poses and all(len(p["lrp_argmax"]) == 34 and p["lrp_cell"] > 0 for p in poses)
    # the cell: the cleaned GT box grown to the aspect ratio and padded, over the 12-pixel-wide heatmap
    ann = next(a for a in doc["annotations"] if a["image_id"] == poses[0]["image_id"] and a["bbox"] == poses[0]["bbox"])
    img = next(i for i in doc["images"] if i["id"] == ann["image_id"])
    _, scale = box_to_center_scale([clean_gt_box(ann["bbox"], img["width"], img["height"], ann["area"])], 48 / 64)
    assert poses[0]["lrp_cell"] == pytest.approx(scale[0, 0] * 200 / 12)
    assert out["lrp"]["history"][-1]["args"]["record_argmax"] is True
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({k: out[k] for k in ("images", "annotations", "categories")}))
    coco = COCO(str(gt))
    loaded = coco.loadRes(poses)  # extra keys are carried, not refused
    assert len(loaded.anns) == len(poses)
    assert "lrp_argmax" not in json.loads(run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", "--model", tiny_model]).stdout)["lrp"]["poses"][0]

    table = run_lrp(runner, ["displacement", "-", "--format", "json", "--min-oks", "0"], input=res.stdout)
    assert table.exit_code == 0, table.stderr
    assert json.loads(table.stdout)["runs"][0]["keypoints"] > 0


def _doc(shift_cells, cell=4.0, argmax=True):
    """One GT person with 17 visible keypoints, one pose exactly on them, its peaks shifted."""
    rng = np.random.default_rng(4)
    xy = rng.uniform(50, 150, (17, 2))
    g = np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)
    g[16, 2] = 1  # labelled, not visible: not counted
    peak = xy + np.array([shift_cells * cell, 0.0])
    pose = {"image_id": 1, "category_id": 1, "keypoints": [float(v) for v in np.concatenate([xy, np.ones((17, 1))], 1).ravel()],
            "score": 1.0, "bbox": [50.0, 50.0, 100.0, 100.0]}
    if argmax:
        pose["lrp_argmax"], pose["lrp_cell"] = [float(v) for v in peak.ravel()], cell
    doc = adopt({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 200}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 10000.0, "bbox": [50.0, 50.0, 100.0, 100.0],
                         "num_keypoints": 17, "keypoints": [float(v) for v in g.ravel()]}],
        "categories": [{"id": 1, "name": "person"}],
    }, "planted", images=".")
    doc["lrp"]["poses"] = [pose]
    return doc


def test_displacement_bins_planted_shifts(runner, tmp_path):
    paths = []
    for shift in (0.2, 1.7):
        p = tmp_path / f"d{shift}.json"
        p.write_text(json.dumps(_doc(shift)))
        paths.append(str(p))
    png = tmp_path / "fig5.png"
    res = run_lrp(runner, ["displacement", *paths, "--label", "near", "--label", "far", "--format", "json", "--plot", str(png)])
    assert res.exit_code == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert [r["keypoints"] for r in runs] == [16, 16]
    assert runs[0]["share"]["[0, 0.5)"] == 1.0 and runs[1]["share"]["[1.5, 2)"] == 1.0
    assert runs[1]["argmax_mean"] == pytest.approx(1.7) and runs[1]["decoded_mean"] == pytest.approx(0.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = run_lrp(runner, ["displacement", *paths, "--format", "csv"])
    assert csv.stdout.splitlines()[0].startswith("label,keypoints,argmax_mean")
    md = run_lrp(runner, ["displacement", *paths, "--format", "markdown"])
    assert "| 100.0% |" in md.stdout


def test_displacement_bad_input(runner, tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(_doc(0.0, argmax=False)))
    res = run_lrp(runner, ["displacement", str(plain)])
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and "lrp displacement: error:" in res.stderr and "--record-argmax" in res.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_doc(0.0)))
    for args, needle in ((["--min-oks", "2"], "--min-oks"), (["--format", "xml"], "--format"), (["--label", "a", "--label", "b"], "--label")):
        res = run_lrp(runner, ["displacement", str(good), *args])
        assert res.exit_code == 2 and needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


def test_record_argmax_refused_for_regression_heads(runner):
    res = run_lrp(runner, ["pose", "--model", "movenet-thunder", "--record-argmax"])
    assert res.exit_code == 2 and "--record-argmax" in res.stderr and "movenet-thunder" in res.stderr
