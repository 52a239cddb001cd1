"""The TF.js graph-model reader on small synthetic model.json files (every dtype and quantization)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from lrp.errors import LrpError
from lrp.sources.tfjs import decode_attr, read_graph_model


def write_model(tmp_path, entries_and_bytes, shards=2, nodes=None):
    """A model.json whose weights are split over `shards` files."""
    data = b"".join(b for _, b in entries_and_bytes)
    cut = [len(data) * i // shards for i in range(shards + 1)]
    paths = []
    for i in range(shards):
        name = f"group1-shard{i + 1}of{shards}.bin"
        (tmp_path / name).write_bytes(data[cut[i] : cut[i + 1]])
        paths.append(name)
    spec = {
        "format": "graph-model",
        "generatedBy": "test",
        "modelTopology": {"node": nodes or []},
        "weightsManifest": [{"paths": paths, "weights": [e for e, _ in entries_and_bytes]}],
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(spec))
    return path


def test_reads_every_dtype_and_quantization(tmp_path):
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    f16 = np.array([0.1666259765625, -2.5, 1000.0], dtype=np.float32)
    u8 = np.array([0, 1, 255], dtype=np.uint8)
    u16 = np.array([0, 65535], dtype=np.uint16)
    i32 = np.array([-1, 0, 1 << 20], dtype=np.int32)
    i32q = np.array([3, 7], dtype=np.uint8)
    flags = np.array([True, False, True])
    entries = [
        ({"name": "a", "shape": [2, 3], "dtype": "float32"}, f32.tobytes()),
        ({"name": "b", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16", "original_dtype": "float32"}}, f16.astype(np.float16).tobytes()),
        ({"name": "c", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}, u8.tobytes()),
        ({"name": "d", "shape": [2], "dtype": "float32", "quantization": {"dtype": "uint16", "scale": 0.25, "min": 2.0}}, u16.tobytes()),
        ({"name": "e", "shape": [3], "dtype": "int32"}, i32.tobytes()),
        ({"name": "f", "shape": [2], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 2.0, "min": -3.0}}, i32q.tobytes()),
        ({"name": "g", "shape": [3], "dtype": "bool"}, flags.astype(np.uint8).tobytes()),
        ({"name": "h", "shape": [], "dtype": "float32"}, np.float32(4.0).tobytes()),
    ]
    g = read_graph_model(write_model(tmp_path, entries, shards=3))
    np.testing.assert_array_equal(g.weights["a"], f32)
    np.testing.assert_array_equal(g.weights["b"], f16)  # these values are exact in float16
    np.testing.assert_allclose(g.weights["c"], u8 * 0.5 - 1.0)
    np.testing.assert_allclose(g.weights["d"], u16 * 0.25 + 2.0)
    np.testing.assert_array_equal(g.weights["e"], i32)
    np.testing.assert_array_equal(g.weights["f"], [3, 11])
    assert g.weights["f"].dtype == np.int32 and g.weights["g"].dtype == np.bool_
    np.testing.assert_array_equal(g.weights["g"], flags)
    assert g.weights["h"].shape == () and float(g.weights["h"]) == 4.0
    assert g.meta["generatedBy"] == "test"


def test_nodes_and_attributes_are_decoded(tmp_path):
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "8"}]}}}},
        {
            "name": "conv",
            "op": "_FusedConv2D",
            "input": ["x", "w", "^ctrl"],
            "attr": {
                "padding": {"s": base64.b64encode(b"SAME").decode()},
                "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                "fused_ops": {"list": {"s": [base64.b64encode(b"BiasAdd").decode(), base64.b64encode(b"Relu").decode()]}},
                "epsilon": {"f": 0.001},
                "T": {"type": "DT_FLOAT"},
                "keep_dims": {"b": True},
                "N": {"i": "2"},
            },
        },
    ]
    g = read_graph_model(write_model(tmp_path, [({"name": "w", "shape": [1], "dtype": "float32"}, np.float32(1).tobytes())], 1, nodes))
    conv = g.node("conv")
    assert conv.inputs == ["x", "w", "^ctrl"]
    assert conv.attrs == {"padding": "SAME", "strides": [1, 2, 2, 1], "fused_ops": ["BiasAdd", "Relu"], "epsilon": 0.001, "T": "DT_FLOAT", "keep_dims": True, "N": 2}
    assert g.node("x").attrs["shape"] == [1, 8]
    assert decode_attr({"list": {}}) == []


def test_bad_files_fail_clearly(tmp_path):
    entries = [({"name": "a", "shape": [4], "dtype": "float32"}, np.zeros(4, np.float32).tobytes())]
    path = write_model(tmp_path, entries, shards=2)
    (tmp_path / "group1-shard2of2.bin").unlink()
    with pytest.raises(LrpError, match="shard group1-shard2of2.bin is missing"):
        read_graph_model(path)
    (tmp_path / "group1-shard2of2.bin").write_bytes(b"\0" * 4)  # 4 bytes short
    with pytest.raises(LrpError, match="end early at a"):
        read_graph_model(path)
    (tmp_path / "group1-shard2of2.bin").write_bytes(b"\0" * 12)  # 4 bytes too many
    with pytest.raises(LrpError, match="4 bytes more"):
        read_graph_model(path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(LrpError, match="not a readable TF.js model.json"):
        read_graph_model(path)
    (tmp_path / "model.json").write_text(json.dumps({"modelTopology": {}}))
    with pytest.raises(LrpError, match="no weightsManifest"):
        read_graph_model(path)
    bad = [({"name": "s", "shape": [1], "dtype": "string"}, b"")]
    with pytest.raises(LrpError, match="unsupported stored dtype 'string'"):
        read_graph_model(write_model(tmp_path, bad, 1))
