"""`lrp superres`: frames, files, tiling, batching, resume and bad input. Random weights only
(plumbing); real-weight quality is measured by bench/bench_superres.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import run_lrp
from lrp.models.rrdbnet import rrdbnet_x4
from lrp.resize import resize_image

SIZES = [(12, 10), (12, 10), (9, 14)]  # two same-size images (one batch) and another


@pytest.fixture
def tiny_doc(tmp_path):
    """An adopted document of three small LR images with one person each (boxes, keypoints)."""
    rng = np.random.default_rng(0)
    img_dir = tmp_path / "lr"
    img_dir.mkdir()
    images, anns = [], []
    for i, (w, h) in enumerate(SIZES, start=1):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
        kps = [0] * 51
        kps[:3] = [2.5, 3.0, 2]
        anns.append(
            {"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [1.0, 2.0, 4.0, 5.0], "area": 12.0,
             "iscrowd": 0, "num_keypoints": 1, "keypoints": kps,
             "segmentation": [[1.0, 2.0, 5.0, 2.0, 5.0, 7.0, 1.0, 7.0]]}
        )
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person", "keypoints": [f"k{j}" for j in range(17)], "skeleton": []}]}
    path = tmp_path / "lr.json"
    path.write_text(json.dumps(doc))
    return path, img_dir


@pytest.fixture(scope="module")
def random_rrdb_weights(tmp_path_factory):
    """Full-size RRDBNet with PyTorch's default random init, as a .safetensors file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "rrdb_random.safetensors"
    save_file({k: v.contiguous() for k, v in rrdbnet_x4().state_dict().items()}, str(path))
    return path


def _superres(runner, tiny_doc, tmp_path, *extra, out="sr"):
    doc_path, img_dir = tiny_doc
    args = ["superres", str(doc_path), "--images", str(img_dir), "-q", "--out-dir", str(tmp_path / out), *extra]
    return run_lrp(runner, args)


def test_bicubic_frames_and_pixels(runner, tiny_doc, tmp_path):
    res = _superres(runner, tiny_doc, tmp_path, "--model", "bicubic", "--scale", "3")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    for img, (w, h) in zip(doc["images"], SIZES):
        assert (img["width"], img["height"]) == (3 * w, 3 * h)
        assert img["lrp"]["xform"] == [3.0, 3.0, 0.0, 0.0]
        sr = np.asarray(Image.open(Path(doc["lrp"]["image_root"]) / img["file_name"]))
        lr = np.asarray(Image.open(tiny_doc[1] / f"{img['id']}.png"))
        assert np.array_equal(sr, resize_image(lr, 3.0))  # MATLAB bicubic, via lrp.resize
    ann = doc["annotations"][0]
    assert ann["bbox"] == [3.0, 6.0, 12.0, 15.0] and ann["area"] == pytest.approx(12.0 * 9)
    assert ann["keypoints"][:3] == [7.5, 9.0, 2] and ann["id"] == 11
    assert doc["lrp"]["history"][-1]["command"] == "superres"
    assert doc["lrp"]["history"][-1]["args"]["model"] == "bicubic"


def test_rrdbnet_batched_equals_one_by_one_and_resumes(runner, tiny_doc, tmp_path, random_rrdb_weights):
    common = ["--model", "esrgan", "--weights", str(random_rrdb_weights), "--device", "cpu"]
    one = _superres(runner, tiny_doc, tmp_path, *common, "--batch-size", "1", out="one")
    assert one.exit_code == 0, one.stderr
    batched = _superres(runner, tiny_doc, tmp_path, *common, "--batch-size", "4", out="batched")
    assert batched.exit_code == 0, batched.stderr
    for i, (w, h) in enumerate(SIZES, start=1):
        a = np.asarray(Image.open(tmp_path / "one" / f"{i}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "batched" / f"{i}.png"), dtype=int)
        assert a.shape == (4 * h, 4 * w, 3)
        assert np.abs(a - b).max() <= 1
    # Re-running the same step reuses the finished images (the files are not rewritten).
    stamp = (tmp_path / "one" / "1.png").stat().st_mtime_ns
    again = _superres(runner, tiny_doc, tmp_path, *common, "--batch-size", "1", out="one")
    assert again.exit_code == 0 and (tmp_path / "one" / "1.png").stat().st_mtime_ns == stamp
    assert json.loads(again.stdout) == json.loads(one.stdout) | {"lrp": json.loads(again.stdout)["lrp"]}


def _smooth_image(w, h, seed=1):
    """Smooth content, like a real LR image (noise would make every pixel an edge)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(128 + 100 * np.sin(xx / 5 + c) * np.cos(yy / 7)) for c in range(3)], -1)
    return np.clip(arr + rng.normal(0, 3, arr.shape), 0, 255).astype(np.uint8)


def test_tiled_equals_untiled_cli(runner, tmp_path, random_rrdb_weights):
    """Full ESRGAN architecture, a 20x12 image in 16-pixel tiles, 12 pixels of overlap."""
    img_dir = tmp_path / "lr"
    img_dir.mkdir()
    Image.fromarray(_smooth_image(20, 12)).save(img_dir / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 12}], "annotations": [],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "d.json").write_text(json.dumps(doc))
    base = ["superres", str(tmp_path / "d.json"), "--images", str(img_dir), "-q", "--model", "esrgan",
            "--weights", str(random_rrdb_weights), "--device", "cpu"]
    assert run_lrp(runner, base + ["--out-dir", str(tmp_path / "full")]).exit_code == 0
    res = run_lrp(runner, base + ["--out-dir", str(tmp_path / "tiled"), "--tile", "16", "--tile-overlap", "12"])
    assert res.exit_code == 0, res.stderr
    full = np.asarray(Image.open(tmp_path / "full" / "a.png"), dtype=int)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "a.png"), dtype=int)
    assert full.shape == tiled.shape == (48, 80, 3)
    assert np.abs(full - tiled).max() <= 1


def test_tiled_equals_untiled_in_2d():
    """A 2-block RRDBNet on a 24x20 image in 4 tiles of 12 with 8 pixels of overlap."""
    from lrp.superres import _to_uint8_forward
    from lrp.tiling import tiled_forward

    torch.manual_seed(0)
    fn = _to_uint8_forward(rrdbnet_x4(num_block=2).eval(), torch.float32)
    x = torch.from_numpy(_smooth_image(24, 20)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        full = fn(x)
    tiled = tiled_forward(fn, x, 4, 12, 8, torch.device("cpu"))
    assert full.shape == tiled.shape == (1, 3, 80, 96)
    assert (full.int() - tiled.int()).abs().max() <= 1


def test_tiling_pastes_every_tile_in_place():
    """With an identity-like network (nearest x2), tiles must reassemble exactly."""
    from lrp.tiling import tiled_forward

    x = torch.randint(0, 256, (2, 3, 37, 29), dtype=torch.uint8)
    fn = lambda t: t.repeat_interleave(2, 2).repeat_interleave(2, 3)  # noqa: E731
    out = tiled_forward(fn, x, 2, 16, 5, torch.device("cpu"))
    assert torch.equal(out, fn(x))


# --------------------------------------------------------------------------------------------
# Bad input: one-line errors, nothing written


def _nothing_written(tmp_path, out="sr"):
    return not list((tmp_path / out).glob("*.png")) if (tmp_path / out).exists() else True


def test_wrong_scale_for_an_x4_model(runner, tiny_doc, tmp_path, random_rrdb_weights):
    res = _superres(runner, tiny_doc, tmp_path, "--model", "esrgan", "--scale", "2", "--weights", str(random_rrdb_weights))
    assert res.exit_code == 2
    assert res.stderr.strip() == "lrp superres: error: model esrgan upscales x4 only; got --scale 2"
    assert _nothing_written(tmp_path)


def test_weights_of_another_architecture_or_corrupt(runner, tiny_doc, tmp_path):
    from lrp.models.srmd import srmd

    wrong = tmp_path / "srmd.safetensors"
    save_file({k: v.contiguous() for k, v in srmd(4).state_dict().items()}, str(wrong))
    res = _superres(runner, tiny_doc, tmp_path, "--model", "esrgan", "--weights", str(wrong))
    assert res.exit_code == 1 and "weights do not fit this architecture" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    res = _superres(runner, tiny_doc, tmp_path, "--model", "esrgan", "--weights", str(corrupt))
    assert res.exit_code == 1 and "not a readable safetensors file" in res.stderr
    assert _nothing_written(tmp_path)


def test_missing_weights_say_how_to_get_them(runner, tiny_doc, tmp_path, monkeypatch):
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "empty"))
    res = _superres(runner, tiny_doc, tmp_path, "--model", "realsr-df2k-x4")
    assert res.exit_code == 1 and "lrp weights fetch realsr-df2k-x4" in res.stderr


@pytest.mark.parametrize(
    "content,message",
    [("1 2 3\n", "must be a 2-D array"), ("0.5 0.5\n0.5 0.5\n", "must sum to about 1")],
)
def test_bad_kernels(runner, tiny_doc, tmp_path, content, message):
    kfile = tmp_path / "k.txt"
    kfile.write_text(content if "\n" in content[:-1] else "")
    if content == "1 2 3\n":
        np.save(tmp_path / "k.npy", np.ones((2, 2, 2)) / 8)
        kfile = tmp_path / "k.npy"
    res = _superres(runner, tiny_doc, tmp_path, "--model", "usrnet_tiny", "--kernel", str(kfile))
    assert res.exit_code == 2 and message in res.stderr
    assert _nothing_written(tmp_path)


def test_kernel_for_a_model_that_takes_none(runner, tiny_doc, tmp_path):
    res = _superres(runner, tiny_doc, tmp_path, "--model", "bicubic", "--kernel", "k.npy")
    assert res.exit_code == 2 and "--kernel applies to usrnet models only" in res.stderr


def test_image_too_large_without_tile(runner, tiny_doc, tmp_path, random_rrdb_weights, monkeypatch):
    monkeypatch.setenv("LRP_MEMORY_LIMIT", "100000")
    out = tmp_path / "doc.json"
    res = _superres(runner, tiny_doc, tmp_path, "--model", "esrgan", "--weights", str(random_rrdb_weights), "-o", str(out))
    assert res.exit_code == 1
    assert "image 1 (1.png): the 48x40 SR output needs about" in res.stderr and "use --tile 256" in res.stderr
    assert _nothing_written(tmp_path) and not out.exists()


def test_srmd_is_conditioned_on_the_bicubic_code():
    from lrp.models.srmd import BICUBIC_CODE, conditioned, srmd

    net = srmd(3, noise_input=True).eval()
    seen = {}
    net.convs[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    f = conditioned(net, scale=3, noise=5.0, device=torch.device("cpu"), dtype=torch.float32)
    with torch.inference_mode():
        y = f(torch.rand(2, 3, 6, 7))
    assert y.shape == (2, 3, 18, 21)
    x = seen["x"]
    assert x.shape == (2, 19, 6, 7)
    assert torch.allclose(x[:, 3:18, 0, 0], torch.tensor(BICUBIC_CODE).expand(2, 15))
    assert torch.allclose(x[:, 18], torch.full((2, 6, 7), 5 / 255))


def test_usrnet_tiny_end_to_end_with_the_fitted_kernel(runner, tiny_doc, tmp_path, monkeypatch):
    from lrp.models.usrnet import usrnet

    # A weights folder without the official kernels_bicubicx234.mat: the fitted kernel is used.
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "weights"))

    torch.manual_seed(0)
    wfile = tmp_path / "usrnet_tiny_random.safetensors"
    save_file({k: v.contiguous() for k, v in usrnet(n_iter=6, h_nc=32, nc=[16, 32, 64, 64]).state_dict().items()}, str(wfile))
    res = _superres(runner, tiny_doc, tmp_path, "--model", "usrnet_tiny", "--weights", str(wfile), "--scale", "2", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["lrp"]["history"][-1]["args"]["kernel"] == "fitted bicubic x1/2"
    for img, (w, h) in zip(doc["images"], SIZES):
        assert np.asarray(Image.open(tmp_path / "sr" / img["file_name"])).shape == (2 * h, 2 * w, 3)
    # A kernel file given by the user is used instead (and recorded).
    k = tmp_path / "k.txt"
    k.write_text("0 0.1 0\n0.1 0.6 0.1\n0 0.1 0\n")
    res = _superres(runner, tiny_doc, tmp_path, "--model", "usrnet_tiny", "--weights", str(wfile), "--scale", "2",
                    "--kernel", str(k), "--noise", "2", out="sr2")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["lrp"]["history"][-1]["args"]["kernel"] == str(k)


def test_out_of_memory_halves_the_tile_and_retries():
    from lrp.errors import LrpError
    from lrp.tiling import tiled_forward

    sizes = []

    def fn(t):
        sizes.append(t.shape[-1])
        if t.shape[-1] > 20:  # pretend tiles wider than 20 px do not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return t.repeat_interleave(2, 2).repeat_interleave(2, 3)

    x = torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8)
    out = tiled_forward(fn, x, 2, 64, 2, torch.device("cpu"), retry_on_oom=True)
    assert torch.equal(out, x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert sizes[:2] == [40, 34] and max(sizes[2:]) <= 20  # tile 64 -> 32 (34 with overlap) -> 16
    with pytest.raises(LrpError, match="even with --tile 64"):
        tiled_forward(fn, x, 2, 64, 2, torch.device("cpu"))  # on the CPU nothing is retried
    always = lambda t: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("simulated"))  # noqa: E731
    with pytest.raises(LrpError, match="out of memory"):
        tiled_forward(always, x, 2, 64, 2, torch.device("cpu"), retry_on_oom=True)


@pytest.mark.realdata
def test_real_coco_degrade_then_bicubic_back(runner, coco_val4, tmp_path):
    """Real COCO images: 1/4 down, x4 up; the xform composes to the real size ratios and every
    box comes back to (almost) where the original had it."""
    src = ["degrade", str(coco_val4 / "person_keypoints.json"), "--images", str(coco_val4 / "images"), "--scale", "0.25",
           "-q", "--out-dir", str(tmp_path / "lr")]
    lr = run_lrp(runner, src)
    assert lr.exit_code == 0, lr.stderr
    sr = run_lrp(runner, ["superres", "--model", "bicubic", "-q", "--out-dir", str(tmp_path / "sr")], input=lr.stdout)
    assert sr.exit_code == 0, sr.stderr
    orig = json.loads((coco_val4 / "person_keypoints.json").read_text())
    doc = json.loads(sr.stdout)
    lr_doc = json.loads(lr.stdout)
    sizes = {i["id"]: (i["width"], i["height"]) for i in orig["images"]}
    lr_sizes = {i["id"]: (i["width"], i["height"]) for i in lr_doc["images"]}
    for img in doc["images"]:
        w, h = lr_sizes[img["id"]]
        assert (img["width"], img["height"]) == (4 * w, 4 * h)
        ow, oh = sizes[img["id"]]
        assert img["lrp"]["xform"] == pytest.approx([4 * w / ow, 4 * h / oh, 0, 0])
        assert Image.open(tmp_path / "sr" / img["file_name"]).size == (4 * w, 4 * h)
    by_id = {a["id"]: a for a in orig["annotations"]}
    for ann in doc["annotations"]:
        xf = doc["images"][[i["id"] for i in doc["images"]].index(ann["image_id"])]["lrp"]["xform"]
        x, y, bw, bh = by_id[ann["id"]]["bbox"]
        assert ann["bbox"] == pytest.approx([x * xf[0], y * xf[1], bw * xf[0], bh * xf[1]])
    assert [s["command"] for s in doc["lrp"]["history"]] == ["degrade", "superres"]
