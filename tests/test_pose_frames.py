"""`lrp pose` with a temporal model (registry `frames = 2r+1`): the same crop of every frame of
t's window, stacked on channels frame t-r first, heatmaps of frame t.

Random weights (plumbing only). Each check compares two runs of the real CLI: the 5-frame
network whose first conv reads one slot, against the same network as a 1-frame model on the
frame that slot should hold, written out here (t + j - r, clamped), not through frame_windows.
"""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from conftest import run_lrp
from lrp.models import REGISTRY, ModelSpec, WeightsInfo
from test_video import _doc, video_sample  # noqa: F401  (fixture: the synthetic video)

TEMPORAL = "temporal-pose-5-random"
SINGLE = "temporal-pose-1-test"
FIRST = "stem.0.0.weight"  # the only layer that sees the frames apart
SIZE = ["--input-size", "96x128"]  # any size (fully convolutional); small for speed


@pytest.fixture
def nets(monkeypatch, tmp_path):
    """Weights of the 5-frame entry, and a 1-frame twin of it in the registry."""
    from lrp.models.temporal_pose import random_state

    spec = REGISTRY[TEMPORAL]
    single = ModelSpec(
        name=SINGLE, task="pose", arch="temporal-pose", builder=spec.builder, kwargs={**spec.kwargs, "frames": 1},
        weights=WeightsInfo(file=f"{SINGLE}.safetensors", source="made by the test", licence="-", trained_on="nothing"),
    )
    monkeypatch.setitem(REGISTRY, SINGLE, single)
    return random_state(spec, seed=7), tmp_path / "weights"


def _save(state, folder, name):
    from safetensors.torch import save_file

    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def _split(state, slots):
    """(5-frame state whose first conv reads the RGB groups `slots` with weight w / len(slots),
    1-frame state with w): the two networks then agree when those slots hold the same frame."""
    import torch

    w = state[FIRST]  # (C, 15, 3, 3), slot k = channels 3k .. 3k+2
    one = dict(state, **{FIRST: w[:, 0:3].clone()})
    five = torch.zeros_like(w)
    for k in slots:
        five[:, 3 * k : 3 * k + 3] = w[:, 0:3] / len(slots)
    return dict(state, **{FIRST: five}), one


def _pose(runner, model, weights, doc_path, *extra):
    res = run_lrp(runner, ["pose", "--model", model, "--weights", weights, "--device", "cpu", "--batch-size", "4", *SIZE, "-q", *extra, str(doc_path)])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _write(doc, path):
    path.write_text(json.dumps(doc))
    return path


def _assert_same_poses(got, want):
    assert [(p["image_id"], p["bbox"]) for p in got] == [(p["image_id"], p["bbox"]) for p in want]
    np.testing.assert_allclose([p["keypoints"] for p in got], [p["keypoints"] for p in want], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in want], rtol=1e-5)


def _shifted(doc, j, r=2):
    """Each image's annotations on the pixels of frame clamp(t + j - r) of its video, as stills."""
    by_video: dict = {}
    for img in doc["images"]:
        by_video.setdefault(img["video_id"], []).append(img)
    out = copy.deepcopy(doc)
    names = {}
    for frames in by_video.values():
        frames.sort(key=lambda i: i["frame_id"])
        for t, img in enumerate(frames):
            names[img["id"]] = frames[min(max(t + j - r, 0), len(frames) - 1)]["file_name"]
    for img in out["images"]:
        img["file_name"] = names[img["id"]]
        del img["video_id"], img["frame_id"]
    return out


@pytest.mark.parametrize("j", [0, 2, 4])
def test_slot_j_holds_frame_t_plus_j_minus_r_clamped_at_the_ends(runner, nets, video_sample, tmp_path, j):
    state, folder = nets
    five, one = _split(state, [j])
    doc = _doc(video_sample)
    got = _pose(runner, TEMPORAL, _save(five, folder, f"five-{j}"), _write(doc, tmp_path / "video.json"))
    want = _pose(runner, SINGLE, _save(one, folder, "one"), _write(_shifted(doc, j), tmp_path / "shifted.json"))
    assert len(got["lrp"]["poses"]) >= 15
    _assert_same_poses(got["lrp"]["poses"], want["lrp"]["poses"])
    # The check has power: the frames a slot could wrongly hold give other poses.
    other = _pose(runner, SINGLE, _save(one, folder, "one"), _write(_shifted(doc, 4 - j if j != 2 else 0), tmp_path / "other.json"))
    assert [p["keypoints"] for p in other["lrp"]["poses"]] != [p["keypoints"] for p in want["lrp"]["poses"]]
    assert got["lrp"]["history"][-1]["args"]["frames"] == 5
    assert "frames" not in want["lrp"]["history"][-1]["args"]


def test_crop_sr_cuts_every_frame_of_the_window_low_and_super_resolves_it(runner, nets, video_sample, tmp_path):
    state, folder = nets
    five, one = _split(state, [0])
    doc = _doc(video_sample)
    sr = ["--crop-sr", "bicubic", "--crop-size", "24x32"]
    got = _pose(runner, TEMPORAL, _save(five, folder, "five"), _write(doc, tmp_path / "video.json"), *sr)
    want = _pose(runner, SINGLE, _save(one, folder, "one"), _write(_shifted(doc, 0), tmp_path / "shifted.json"), *sr)
    _assert_same_poses(got["lrp"]["poses"], want["lrp"]["poses"])
    res = run_lrp(runner, ["pose", "--model", TEMPORAL, "--crop-sr", "temporal-sr-x4-random", *SIZE, "-q", str(tmp_path / "video.json")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "--crop-sr temporal-sr-x4-random: a temporal SR model takes neighbouring frames" in res.stderr


def test_a_still_image_is_its_own_window(runner, nets, video_sample, tmp_path):
    state, folder = nets
    five, one = _split(state, range(5))  # every slot w / 5: five copies of one frame give w
    doc = _doc(video_sample)
    for img in doc["images"]:
        if img["video_id"] == 2:  # stills, in a document that also holds a video
            del img["video_id"], img["frame_id"]
    path = _write(doc, tmp_path / "mixed.json")
    got = _pose(runner, TEMPORAL, _save(five, folder, "five"), path)
    want = _pose(runner, SINGLE, _save(one, folder, "one"), path)
    stills = {img["id"] for img in doc["images"] if "video_id" not in img}
    pick = lambda poses, keep: [p for p in poses if (p["image_id"] in stills) == keep]  # noqa: E731
    assert pick(got["lrp"]["poses"], True)
    _assert_same_poses(pick(got["lrp"]["poses"], True), pick(want["lrp"]["poses"], True))
    # In the video the same weights average 5 different frames: other poses.
    assert [p["keypoints"] for p in pick(got["lrp"]["poses"], False)] != [p["keypoints"] for p in pick(want["lrp"]["poses"], False)]


def test_a_missing_window_frame_names_the_image_and_file(runner, nets, video_sample, tmp_path):
    state, folder = nets
    weights = _save(state, folder, "five")
    images = tmp_path / "images"
    shutil.copytree(video_sample[1], images)
    doc = _doc(video_sample)
    doc["lrp"]["image_root"] = str(images)
    walk = sorted((i for i in doc["images"] if i["video_id"] == 2), key=lambda i: i["frame_id"])
    gone = walk[0]
    (images / gone["file_name"]).unlink()
    # Frame 0 has no people left, so only the windows of frames 1 and 2 (t-2 .. t+2) need it.
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != gone["id"]]
    path = _write(doc, tmp_path / "doc.json")
    out = tmp_path / "out.json"
    args = ["pose", "--model", TEMPORAL, "--weights", weights, "--device", "cpu", *SIZE, "-q", str(path), "-o", str(out)]
    res = run_lrp(runner, args)
    assert res.exit_code == 1 and not out.exists() and res.stdout == ""
    assert res.stderr.strip() == (
        f"lrp pose: error: image {walk[1]['id']}: its window of 5 frames needs image {gone['id']} "
        f"({images / gone['file_name']}): file not found"
    )
    res = run_lrp(runner, [*args, "--keep-going"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert [line.split(":")[2] for line in lines[:2]] == [f" image {walk[1]['id']}", f" image {walk[2]['id']}"]
    assert len(lines) == 3 and "2 images failed" in lines[2]
    poses = json.loads(out.read_text())["lrp"]["poses"]
    assert poses and {p["image_id"] for p in poses}.isdisjoint({walk[1]["id"], walk[2]["id"]})
    assert walk[3]["id"] in {p["image_id"] for p in poses}  # its window starts at frame 1


def test_shards_read_whole_windows_and_merge_into_the_unsharded_run(runner, nets, video_sample, tmp_path):
    state, folder = nets
    weights = _save(state, folder, "five")
    path = _write(_doc(video_sample), tmp_path / "video.json")
    full = _pose(runner, TEMPORAL, weights, path)
    parts = []
    for i in range(3):  # a frame's neighbours mostly lie in other shards
        part = tmp_path / f"pose.{i}.json"
        part.write_text(json.dumps(_pose(runner, TEMPORAL, weights, path, "--shard", f"{i}/3")))
        parts.append(str(part))
    res = run_lrp(runner, ["merge", "-q", *parts])
    assert res.exit_code == 0, res.stderr
    _assert_same_poses(json.loads(res.stdout)["lrp"]["poses"], full["lrp"]["poses"])


def test_random_weights_are_written_where_pose_finds_them(runner, video_sample, tmp_path, monkeypatch):
    import subprocess
    import sys

    from safetensors.torch import load_file

    from conftest import REPO

    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "w"))
    done = subprocess.run([sys.executable, "-m", "lrp.models.temporal_pose"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "w" / REGISTRY[TEMPORAL].weights.file
    assert done.stdout.split() == [str(path)]
    state = load_file(str(path))
    # Non-default BN statistics and biases: ignoring any of them would change the poses.
    assert all((state[k] > 0).all() and (state[k] != 1).all() for k in state if k.endswith("running_var"))
    assert all((state[k] != 0).all() for k in state if k.endswith(("running_mean", "bias")))
    assert sum(k.endswith("running_var") for k in state) == 4 and "final_layer.bias" in state
    res = run_lrp(runner, ["pose", "--model", TEMPORAL, "--device", "cpu", *SIZE, "-q", str(_write(_doc(video_sample), tmp_path / "v.json"))])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["lrp"]["poses"]
