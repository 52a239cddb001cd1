"""A new SR model is one model file plus one registry entry: this file is both (a tiny network,
its conditioner and its ModelSpec), and `lrp superres` runs it without any change to lrp.
Random weights: this proves the plumbing (memory, conditioning, loading), not quality."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from conftest import run_lrp
from lrp.models import REGISTRY, ModelSpec, WeightsInfo

SCALE = 2

# --------------------------------------------------------------------------------------------
# "The model file": a network, and how it takes its conditioning


class TinySR(nn.Module):
    """conv -> pixel shuffle, with the noise level and the kernel's centre tap as extra planes."""

    def __init__(self, scale: int = SCALE, width: int = 8):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(5, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3 * scale * scale, 3, padding=1))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x, noise_map, kernel_map):
        return self.shuffle(self.body(torch.cat([x, noise_map, kernel_map], 1)))


def tiny_sr(scale: int = SCALE) -> TinySR:
    return TinySR(scale)


def conditioned(net: TinySR, *, scale: int, device, dtype, kernel, noise):
    k = float(np.asarray(kernel)[tuple(s // 2 for s in np.shape(kernel))])

    def forward(x):
        n, _, h, w = x.shape
        return net(x, torch.full((n, 1, h, w), noise / 255, device=device, dtype=dtype),
                   torch.full((n, 1, h, w), k, device=device, dtype=dtype))

    return forward


# --------------------------------------------------------------------------------------------
# "The registry entry"

SPEC = ModelSpec(
    name="tiny-sr-x2",
    task="superres",
    arch="tiny-sr",
    builder=f"{__name__}:tiny_sr",
    scale=SCALE,
    weights=WeightsInfo(file="tiny-sr-x2.safetensors", source="(test model)", licence="test", trained_on="nothing"),
    bytes_per_output_pixel=300,
    conditioning=("kernel", "noise"),
    conditioner=f"{__name__}:conditioned",
)


@pytest.fixture
def registered(monkeypatch, tmp_path):
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)
    torch.manual_seed(0)
    net = tiny_sr()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # biases away from their init
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return net, weights


def random_images_doc(folder, sizes, seed=0):
    """A COCO file `folder`.json over random PNGs 1.png, 2.png... of `sizes` (w, h) in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    images = []
    for i, (w, h) in enumerate(sizes, start=1):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
    path = folder.with_suffix(".json")
    path.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    return path, folder, images


@pytest.fixture
def lr_doc(tmp_path):
    return random_images_doc(tmp_path / "lr", [(10, 8), (7, 9)])


def _expected(net, png, noise, centre):
    x = torch.from_numpy(np.array(Image.open(png))).permute(2, 0, 1)[None].float() / 255
    n, _, h, w = x.shape
    with torch.no_grad():
        y = net(x, torch.full((n, 1, h, w), noise / 255), torch.full((n, 1, h, w), centre))
    return y.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_a_model_registered_from_this_file_runs_in_lrp_superres(runner, registered, lr_doc, tmp_path):
    net, weights = registered
    doc_path, img_dir, images = lr_doc
    kernel = tmp_path / "k.txt"
    kernel.write_text("0 0.1 0\n0.1 0.6 0.1\n0 0.1 0\n")
    res = run_lrp(runner, ["superres", str(doc_path), "--images", str(img_dir), "--model", "tiny-sr-x2", "--weights", str(weights),
                           "--kernel", str(kernel), "--noise", "5", "--device", "cpu", "--out-dir", str(tmp_path / "sr"), "-q"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    args = doc["lrp"]["history"][-1]["args"]
    assert (args["model"], args["scale"], args["kernel"], args["noise"]) == ("tiny-sr-x2", 2, str(kernel), 5.0)
    for img, src in zip(doc["images"], images):
        assert (img["width"], img["height"]) == (2 * src["width"], 2 * src["height"])
        got = np.asarray(Image.open(tmp_path / "sr" / img["file_name"]))
        np.testing.assert_array_equal(got, _expected(net, img_dir / src["file_name"], 5.0, 0.6))


def test_its_spec_alone_decides_scale_memory_and_conditioning(runner, registered, lr_doc, tmp_path, monkeypatch):
    _, weights = registered
    doc_path, img_dir, _ = lr_doc
    base = ["superres", str(doc_path), "--images", str(img_dir), "--model", "tiny-sr-x2", "--weights", str(weights),
            "--device", "cpu", "--out-dir", str(tmp_path / "sr"), "-q"]
    res = run_lrp(runner, [*base, "--scale", "3"])
    assert res.exit_code == 2 and "tiny-sr-x2 upscales x2 only" in res.stderr
    # The default kernel of a kernel-conditioned model: lrp's fit of the document's resize.
    ok = run_lrp(runner, base)
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["lrp"]["history"][-1]["args"]["kernel"] == "fitted bicubic x1/2"
    # 300 (+8 staging) bytes per output pixel: the 20x16 output of image 1 needs 98560 bytes.
    monkeypatch.setenv("LRP_MEMORY_LIMIT", "90000")
    res = run_lrp(runner, [*base[:-3], "--out-dir", str(tmp_path / "sr2"), "-q"])
    assert res.exit_code == 1 and "image 1 (1.png): the 20x16 SR output needs about" in res.stderr
    assert not (tmp_path / "sr2").exists() or not any((tmp_path / "sr2").iterdir())
