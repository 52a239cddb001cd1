"""Videos (issue 13): `lrp frames`, the synthetic video, frame windows, the temporal SR plumbing,
every command on a video document, per-step timing and `evaluate --timing`.

Random weights throughout: they prove plumbing (windows, stacking order, ids kept, timing
recorded), never quality.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import run_lrp
from lrp.frames import frame_windows, sequences
from lrp.models import REGISTRY, ModelSpec, WeightsInfo

TEMPORAL = "temporal-sr-x4-random"


def _av():
    """PyAV (the `video` extra): skip in a user's clone without it, fail in CI where it is installed."""
    try:
        import av
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyAV is missing; CI installs lrp[video]")
        pytest.skip("PyAV not installed (pip install 'lrp[video]')")
    return av


@pytest.fixture(scope="module")
def video_sample(tmp_path_factory):
    from lrp.sample_video import write

    root = tmp_path_factory.mktemp("video-sample")
    return write(root), root / "images"


def _doc(video_sample) -> dict:
    from lrp.document import adopt

    ann, images = video_sample
    return adopt(json.loads(ann.read_text()), "video", images=images)


def _ids(doc):
    return [(i["id"], i.get("video_id"), i.get("frame_id")) for i in doc["images"]]


# --------------------------------------------------------------------------------------------
# The synthetic video and `lrp frames`


def test_sample_video_moves_figures_with_exact_annotations(video_sample):
    doc = _doc(video_sample)
    videos = sequences(doc)
    assert sorted(videos) == [1, 2] and [len(v) for v in videos.values()] == [5, 6]
    by_image = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    walk = videos[2]
    first, second = (by_image[walk[t]["id"]][0] for t in (0, 1))
    # The first figure of "walk" moves by (6.0, 0.5) px per frame: keypoints and box move with it.
    k0, k1 = np.reshape(first["keypoints"], (-1, 3)), np.reshape(second["keypoints"], (-1, 3))
    seen = (k0[:, 2] > 0) & (k1[:, 2] > 0)
    np.testing.assert_allclose(k1[seen, :2] - k0[seen, :2], np.tile([6.0, 0.5], (seen.sum(), 1)), atol=0.011)
    assert first["area"] > 32 * 32 and first["num_keypoints"] == 17
    # The drawn pixels are the figure: its mask's colour differs from the still background.
    from pycocotools import mask as mask_util

    img = np.asarray(Image.open(video_sample[1] / walk[1]["file_name"]))
    m = mask_util.decode(mask_util.frPyObjects(second["segmentation"], img.shape[0], img.shape[1])).max(axis=2).astype(bool)
    assert abs(int(m.sum()) - second["area"]) <= 0.01 * second["area"]


def test_frames_from_a_folder_match_the_sample(runner, video_sample, tmp_path):
    res = run_lrp(runner, ["frames", str(video_sample[1]), "-q"])
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    want = _doc(video_sample)
    keys = ("id", "file_name", "width", "height", "video_id", "frame_id")
    assert [{k: i[k] for k in keys} for i in got["images"]] == [{k: i[k] for k in keys} for i in want["images"]]
    assert got["lrp"]["image_root"] == str(video_sample[1].resolve())
    assert got["lrp"]["history"][-1]["command"] == "frames"


def test_frames_decodes_a_video_file_losslessly_into_png(runner, video_sample, tmp_path):
    av = _av()
    doc = _doc(video_sample)
    walk = sequences(doc)[2]
    frames = [np.asarray(Image.open(video_sample[1] / i["file_name"]).convert("RGB")) for i in walk]
    path = tmp_path / "walk.mkv"
    with av.open(str(path), "w") as c:  # FFV1: lossless, so decoded frames must equal the drawn ones
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for a in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    out = tmp_path / "decoded"
    res = run_lrp(runner, ["frames", "--out-dir", str(out), str(path), "-q"])
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    assert [(i["video_id"], i["frame_id"], i["file_name"]) for i in got["images"]] == [(1, t, f"walk/{t:06d}.png") for t in range(6)]
    for img, want in zip(got["images"], frames):
        with Image.open(out / img["file_name"]) as im:
            assert im.format == "PNG"
            np.testing.assert_array_equal(np.asarray(im), want)
    # A re-run reuses the finished frames (same manifest) and gives the same document.
    again = run_lrp(runner, ["frames", "--out-dir", str(out), str(path), "-q"])
    assert again.exit_code == 0 and json.loads(again.stdout)["images"] == got["images"]


def _write_frames(root, names, sizes=None):
    for k, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        w, h = (sizes or {}).get(name, (8, 6))
        Image.fromarray(np.full((h, w, 3), k * 20, np.uint8)).save(root / name)


@pytest.mark.parametrize(
    "names, sizes, message",
    [
        (["a/000000.png", "a/000001.png", "a/000003.png"], None, "video a: frame 2 is missing (000001.png and 000003.png are there)"),
        (["a/1.png", "a/001.jpg"], None, "video a: frame 1 appears twice"),
        (["a/000000.png", "a/000001.png"], {"a/000001.png": (10, 6)}, "video a: frame 1 (a/000001.png) is 10x6, the video's first frame is 8x6"),
    ],
)
def test_frames_refuses_gaps_duplicates_and_mixed_resolutions(runner, tmp_path, names, sizes, message):
    _write_frames(tmp_path / "clips", names, sizes)
    res = run_lrp(runner, ["frames", str(tmp_path / "clips"), "-q"])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip() == f"lrp frames: error: {message}" or message in res.stderr.splitlines()[0]
    assert len(res.stderr.strip().splitlines()) == 1


def test_frames_usage_and_unreadable_video(runner, tmp_path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video at all")
    res = run_lrp(runner, ["frames", str(bogus), "-q"])
    assert res.exit_code == 2 and "needs --out-dir" in res.stderr
    _av()
    res = run_lrp(runner, ["frames", "--out-dir", str(tmp_path / "out"), str(bogus), "-q"])
    assert res.exit_code == 1 and res.stderr.startswith(f"lrp frames: error: {bogus}: cannot decode")
    assert not list((tmp_path / "out").glob("**/*.png"))


# --------------------------------------------------------------------------------------------
# Sequences and windows


def _video_doc(frames):
    """frames: [(image id, video id or None, frame id, (w, h))]."""
    images = []
    for iid, vid, fid, (w, h) in frames:
        img = {"id": iid, "file_name": f"{iid}.png", "width": w, "height": h}
        if vid is not None:
            img.update(video_id=vid, frame_id=fid)
        images.append(img)
    return {"images": images, "annotations": [], "categories": []}


def test_frame_windows_clamp_at_the_ends_and_repeat_stills():
    # Video 7 given out of order, a still image 99, and a one-frame video 8.
    doc = _video_doc([(3, 7, 12, (4, 4)), (1, 7, 10, (4, 4)), (2, 7, 11, (4, 4)), (4, 7, 13, (4, 4)), (99, None, None, (5, 5)), (50, 8, 0, (4, 4))])
    assert frame_windows(doc, 2) == {
        1: [1, 1, 1, 2, 3], 2: [1, 1, 2, 3, 4], 3: [1, 2, 3, 4, 4], 4: [2, 3, 4, 4, 4],
        99: [99] * 5, 50: [50] * 5,
    }
    assert frame_windows(doc, 0) == {i: [i] for i in (1, 2, 3, 4, 99, 50)}


@pytest.mark.parametrize(
    "frames, message",
    [
        ([(1, 7, 0, (4, 4)), (2, 7, 2, (4, 4))], "video 7: frame 1 is missing (frames 0 and 2 are there)"),
        ([(1, 7, 0, (4, 4)), (2, 7, 0, (4, 4))], "video 7: frame_id 0 appears twice (images 1 and 2)"),
        ([(1, 7, 0, (4, 4)), (2, 7, 1, (6, 4))], "video 7: frame 1 (image 2) is 6x4, frame 0 is 4x4"),
    ],
)
def test_sequences_refuse_bad_videos(frames, message):
    from lrp.errors import LrpError

    with pytest.raises(LrpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sequences(_video_doc(frames), "doc.json")


# --------------------------------------------------------------------------------------------
# The temporal model: superres feeds it the window, frame t-r first


@pytest.fixture
def temporal_weights(monkeypatch, tmp_path):
    import torch
    from safetensors.torch import save_file

    spec = REGISTRY[TEMPORAL]
    torch.manual_seed(1)
    net = spec.build()
    with torch.no_grad():
        for p in net.parameters():  # weights and biases well away from their init
            p.mul_(0.2).add_(torch.randn_like(p) * 0.02)
    (tmp_path / "w").mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w" / spec.weights.file))
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "w"))
    return net.eval()


def _direct(net, pngs):
    import torch

    x = np.concatenate([np.asarray(Image.open(p).convert("RGB")) for p in pngs], axis=2)
    with torch.no_grad():
        y = net(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255)
    return y.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_temporal_sr_output_is_the_forward_on_the_stacked_neighbours(runner, temporal_weights, video_sample, tmp_path):
    net = temporal_weights
    lr = tmp_path / "lr.json"
    res = run_lrp(runner, ["degrade", "--scale", "0.25", "--out-dir", str(tmp_path / "lr"), "-o", str(lr), "-q",
                           "--images", str(video_sample[1]), str(video_sample[0])])
    assert res.exit_code == 0, res.stderr
    res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--batch-size", "3", "--out-dir", str(tmp_path / "sr"), "-q", str(lr)])
    assert res.exit_code == 0, res.stderr
    sr = json.loads(res.stdout)
    lr_doc = json.loads(lr.read_text())
    by_video: dict = {}
    for img in lr_doc["images"]:
        by_video.setdefault(img["video_id"], []).append(img)
    for frames in by_video.values():
        frames.sort(key=lambda i: i["frame_id"])
        for t, img in enumerate(frames):
            # Written out here, not through frame_windows: t-2 .. t+2, clamped.
            window = [frames[min(max(t + d, 0), len(frames) - 1)] for d in range(-2, 3)]
            want = _direct(net, [tmp_path / "lr" / w["file_name"] for w in window])
            got = np.asarray(Image.open(tmp_path / "sr" / img["file_name"]))
            np.testing.assert_array_equal(got, want)
    assert _ids(sr) == _ids(lr_doc)
    assert sr["lrp"]["history"][-1]["args"]["frames"] == 5
    # The centre frame matters most but not alone: a still repeated 5 times gives another image.
    img = by_video[2][2]
    still = _direct(net, [tmp_path / "lr" / img["file_name"]] * 5)
    assert not np.array_equal(still, np.asarray(Image.open(tmp_path / "sr" / img["file_name"])))


def test_temporal_sr_shards_read_neighbours_from_other_shards(runner, temporal_weights, video_sample, tmp_path):
    """Each shard super-resolves its own frames from whole windows: the PNGs of three shards
    (one --out-dir, as shards of one step share it) are those of the unsharded run."""
    lr = tmp_path / "lr.json"
    res = run_lrp(runner, ["degrade", "--scale", "0.25", "--out-dir", str(tmp_path / "lr"), "-o", str(lr), "-q",
                           "--images", str(video_sample[1]), str(video_sample[0])])
    assert res.exit_code == 0, res.stderr
    res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--out-dir", str(tmp_path / "full"), "-q", str(lr)])
    assert res.exit_code == 0, res.stderr
    full = json.loads(res.stdout)
    seen = []
    for i in range(3):
        res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--shard", f"{i}/3",
                               "--out-dir", str(tmp_path / "parts"), "-q", str(lr)])
        assert res.exit_code == 0, res.stderr
        seen += [img["file_name"] for img in json.loads(res.stdout)["images"]]
    assert sorted(seen) == sorted(img["file_name"] for img in full["images"])
    for name in seen:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "parts" / name)), np.asarray(Image.open(tmp_path / "full" / name)))


def test_temporal_sr_on_images_outside_videos_sees_a_still(runner, temporal_weights, tmp_path):
    from test_new_model import random_images_doc

    doc_path, folder, images = random_images_doc(tmp_path / "imgs", [(9, 7), (6, 8)])
    res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--images", str(folder), "--out-dir", str(tmp_path / "sr"), "-q", str(doc_path)])
    assert res.exit_code == 0, res.stderr
    for img in images:
        got = np.asarray(Image.open(tmp_path / "sr" / img["file_name"]))
        np.testing.assert_array_equal(got, _direct(temporal_weights, [folder / img["file_name"]] * 5))


def test_temporal_sr_refuses_a_video_with_a_missing_frame(runner, temporal_weights, video_sample, tmp_path):
    doc = _doc(video_sample)
    doc["images"] = [i for i in doc["images"] if not (i["video_id"] == 2 and i["frame_id"] == 3)]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in {i["id"] for i in doc["images"]}]
    path = tmp_path / "gap.json"
    path.write_text(json.dumps(doc))
    res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--out-dir", str(tmp_path / "sr"), "-q", str(path)])
    assert res.exit_code == 1
    assert res.stderr.strip() == "lrp superres: error: document: video 2: frame 3 is missing (frames 2 and 4 are there)"
    assert not (tmp_path / "sr").exists() or not list((tmp_path / "sr").glob("**/*.png"))


# --------------------------------------------------------------------------------------------
# Every command on a video document; timing in the history and beside AP


@pytest.fixture
def tiny_pose(monkeypatch, tmp_path):
    import torch
    from safetensors.torch import save_file

    spec = ModelSpec(
        name="hrnet-tiny-video-test", task="pose", arch="hrnet-tiny-test", builder="lrp.models.hrnet:PoseHighResolutionNet",
        kwargs={"width": 8, "stage_modules": [1, 1, 1], "stage_blocks": 1, "layer1_blocks": 1, "input_size": [48, 64]},
        weights=WeightsInfo(file="hrnet-tiny-video-test.safetensors", source="made by the test", licence="-", trained_on="nothing"),
    )
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    weights = tmp_path / "pose-w"
    weights.mkdir()
    monkeypatch.setenv("LRP_WEIGHTS", str(weights))
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in spec.build().state_dict().items()}, str(weights / spec.weights.file))
    return spec.name


def test_degrade_superres_pose_evaluate_keep_video_ids_and_record_timing(runner, tiny_pose, video_sample, tmp_path):
    want = _ids(_doc(video_sample))
    lr, sr, pose = tmp_path / "lr.json", tmp_path / "sr.json", tmp_path / "pose.json"
    steps = [
        ["degrade", "--scale", "0.25", "--kernel", "gaussian:1.0", "--images", str(video_sample[1]), str(video_sample[0]), "-o", str(lr)],
        ["superres", "--model", "bicubic", "--scale", "4", str(lr), "-o", str(sr)],
        ["pose", "--model", tiny_pose, "--boxes", "gt", "--device", "cpu", str(sr), "-o", str(pose)],
    ]
    for args in steps:
        res = run_lrp(runner, [*args, "-q"])
        assert res.exit_code == 0, res.stderr
    for path in (lr, sr, pose):
        assert _ids(json.loads(path.read_text())) == want
    doc = json.loads(pose.read_text())
    people = sum(1 for a in doc["annotations"] if max(a["keypoints"]) > 0)
    timing = {h["command"]: h.get("timing") for h in doc["lrp"]["history"]}
    assert timing["degrade"] is None  # no model
    assert timing["superres"]["device"] == "cpu" and timing["superres"]["images"] == len(want)
    assert timing["superres"]["people"] == len(doc["annotations"])  # every GT person (no crowds here)
    assert timing["pose"]["images"] == len({a["image_id"] for a in doc["annotations"] if max(a["keypoints"]) > 0})
    assert timing["pose"]["people"] == people
    for t in (timing["superres"], timing["pose"]):
        assert 0 < t["model_ms_per_image"] <= t["total_ms_per_image"]
        assert t["model_ms_per_person"] == pytest.approx(t["model_ms_per_image"] * t["images"] / t["people"], rel=1e-3, abs=2e-3)

    res = run_lrp(runner, ["evaluate", "--timing", "--format", "json", "-q", str(pose)])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)["documents"][0]
    assert out["metrics"]["keypoints"]["AP"] is not None
    chain = out["timing"]["chain"]
    assert chain["steps"] == "superres + pose" and chain["device"] == "cpu"
    assert chain["model_ms_per_image"] == pytest.approx(timing["superres"]["model_ms_per_image"] + timing["pose"]["model_ms_per_image"], abs=2e-3)
    assert [s["command"] for s in out["timing"]["steps"]] == ["superres", "pose"]
    table = run_lrp(runner, ["evaluate", "--timing", "--format", "markdown", "-q", str(pose)]).stdout
    header = next(line for line in table.splitlines() if line.startswith("| document | AP"))
    assert header.endswith("| device | model ms/img | total ms/img | model ms/person | total ms/person |")
    assert "### Time per step" in table and f"| superres | cpu | {len(want)} |" in table
    # Without --timing the tables are as before.
    plain = run_lrp(runner, ["evaluate", "--format", "markdown", "-q", str(pose)]).stdout
    assert "ms/img" not in plain and "Time per step" not in plain


def test_timing_is_not_part_of_the_run_hash(runner, video_sample, tmp_path, monkeypatch):
    from lrp.outputs import run_hash

    doc = _doc(video_sample)
    doc["lrp"]["history"].append({"command": "superres", "args": {"model": "x"}, "version": "0", "timing": {"model_ms_per_image": 1.0}})
    other = json.loads(json.dumps(doc))
    other["lrp"]["history"][-1]["timing"]["model_ms_per_image"] = 2.0
    assert run_hash("pose", doc, {}) == run_hash("pose", other, {})
    other["lrp"]["history"][-1]["args"]["model"] = "y"
    assert run_hash("pose", doc, {}) != run_hash("pose", other, {})
    # A re-run of a step on an input whose timing differs resumes in the same folder.
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    doc["lrp"]["history"].pop()
    doc["lrp"]["history"].append({"command": "superres", "args": {}, "version": "0", "time": "t", "timing": {"model_ms_per_image": 1.0}})
    a.write_text(json.dumps(doc))
    doc["lrp"]["history"][-1]["timing"]["model_ms_per_image"] = 5.0
    b.write_text(json.dumps(doc))
    first = run_lrp(runner, ["superres", "--model", "bicubic", "--scale", "2", str(a)])
    second = run_lrp(runner, ["superres", "--model", "bicubic", "--scale", "2", str(b)])
    assert first.exit_code == second.exit_code == 0
    assert "reused from an earlier run" in second.stderr and json.loads(first.stdout)["lrp"]["image_root"] == json.loads(second.stdout)["lrp"]["image_root"]


def test_stopwatch_accumulates_model_time_inside_the_total():
    import time

    from lrp.timing import Stopwatch, timed

    watch = Stopwatch("cpu")
    for _ in range(2):
        with timed(watch):
            time.sleep(0.02)
    with timed(None):  # no stopwatch: nothing recorded
        time.sleep(0.01)
    rec = watch.record(images=2, people=0)
    assert watch.model_s >= 0.04 and rec["model_ms_per_image"] >= 20.0
    assert rec["total_ms_per_image"] >= rec["model_ms_per_image"] + 5.0 - 1e-6
    assert rec["model_ms_per_person"] is None and rec["total_ms_per_person"] is None


# --------------------------------------------------------------------------------------------
# STAR-Pose's degradation: Gaussian blur, then 2x/4x bicubic, frame by frame


def test_video_degradation_is_per_frame_blur_then_bicubic(runner, video_sample, tmp_path):
    from lrp.degrade import degrade_pixels, noise_rng, plan_frames
    from lrp.images import load_rgb
    from lrp.kernels import parse_blur

    res = run_lrp(runner, ["degrade", "--kernel", "gaussian:1.2", "--scale", "0.5", "--noise", "2", "--seed", "3",
                           "--out-dir", str(tmp_path / "lr"), "-q", "--images", str(video_sample[1]), str(video_sample[0])])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lrp"]["degradation"] == {"method": "bicubic", "scale": 0.5, "kernel": "gaussian:1.2", "noise": 2.0, "jpeg": None, "seed": 3}
    doc = _doc(video_sample)
    frames = plan_frames(doc, scale=0.5)
    blur, _ = parse_blur("gaussian:1.2")
    for img, new in zip(doc["images"], out["images"]):
        arr = load_rgb(video_sample[1] / img["file_name"])
        want = degrade_pixels(arr, frames[img["id"]], blur=blur, noise=2.0, rng=noise_rng(3, img["id"]))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "lr" / new["file_name"])), want)
        assert (new["width"], new["height"]) == ((img["width"] + 1) // 2, (img["height"] + 1) // 2)
    # Noise is drawn per frame (seed, image id): two frames of one still background differ.
    a, b = (np.asarray(Image.open(tmp_path / "lr" / out["images"][i]["file_name"])).astype(int) for i in (0, 1))
    assert np.abs(a - b)[:5, :5].sum() > 0


def test_help_imports_neither_torch_nor_av():
    import subprocess
    import sys

    from conftest import REPO

    code = "import sys; from lrp.cli import app; import lrp.frames, lrp.timing, lrp.sample_video; assert not {'torch', 'av'} & set(sys.modules), 'heavy import'"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


from test_detect import random_centernet, small_input  # noqa: E402,F401  (fixtures: random CenterNet at 128 px)


def test_detect_on_a_video_document_keeps_ids_and_records_timing(runner, video_sample, random_centernet, small_input):
    res = run_lrp(runner, ["detect", "--model", "centernet-mbv3", "--weights", str(random_centernet), "--device", "cpu",
                           "--score-threshold", "0", "-q", "--images", str(video_sample[1]), str(video_sample[0])])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert _ids(doc) == _ids(_doc(video_sample)) and doc["lrp"]["detections"]
    t = doc["lrp"]["history"][-1]["timing"]
    assert (t["device"], t["images"], t["people"]) == ("cpu", len(doc["images"]), len(doc["annotations"]))
    assert 0 < t["model_ms_per_image"] <= t["total_ms_per_image"]


def test_a_shard_document_tells_how_to_run_a_temporal_step(runner, temporal_weights, video_sample, tmp_path):
    """degrade --shard I/N | superres TEMPORAL: the shard lacks neighbours; the line says what to do."""
    part = tmp_path / "part.json"
    res = run_lrp(runner, ["degrade", "--scale", "0.25", "--shard", "0/3", "--out-dir", str(tmp_path / "lr"), "-o", str(part), "-q",
                           "--images", str(video_sample[1]), str(video_sample[0])])
    assert res.exit_code == 0, res.stderr
    res = run_lrp(runner, ["superres", "--model", TEMPORAL, "--device", "cpu", "--out-dir", str(tmp_path / "sr"), "-q", str(part)])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert "is missing" in line and line.endswith(
        "this document is shard 0/3, whose neighbouring frames lie in other shards: run this step on the whole document with --shard instead"
    )
