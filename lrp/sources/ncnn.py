"""A reader for ncnn models (`.param` text + `.bin` weights), torch-free, for `lrp weights fetch`.

The `.param` file: the magic line `7767517`, then `layer_count blob_count`, then one layer a
line: `Type name n_in n_out in_blobs... out_blobs... key=value...` (a negative key -23300-k
holds an array `k=count,v1,v2,...`).

The `.bin` file holds, for each layer with weights in `.param` order, the weight data behind a
4-byte storage tag (0x01306B47: fp16, 0x00000000: fp32, padded to 4 bytes), then the bias as
raw fp32. Nothing else: the reader checks that the file is consumed exactly, so a wrong or
truncated file fails loudly instead of shifting every later tensor.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrp.errors import LrpError

MAGIC = "7767517"
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, object]  # int, float or list (array params)
    weight: np.ndarray | None = None  # float32, (out, in, kh, kw) for convolutions
    bias: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_param(text: str, name: str = "<param>") -> list[Layer]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != MAGIC:
        raise LrpError(f"{name}: not an ncnn .param file (first line should be {MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise LrpError(f"{name}: line 2 should be 'layer_count blob_count'") from None
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        try:
            typ, lname, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
            ins = fields[4 : 4 + n_in]
            outs = fields[4 + n_in : 4 + n_in + n_out]
            params: dict[int, object] = {}
            for item in fields[4 + n_in + n_out :]:
                key, _, value = item.partition("=")
                k = int(key)
                if k <= -23300:  # array parameter: count, then the values
                    values = [_value(v) for v in value.split(",")]
                    params[-23300 - k] = values[1 : 1 + values[0]]
                else:
                    params[k] = _value(value)
        except (IndexError, ValueError):
            raise LrpError(f"{name}: line {lineno} is not a valid ncnn layer: {line[:60]!r}") from None
        layers.append(Layer(typ, lname, ins, outs, params))
    if len(layers) != layer_count:
        raise LrpError(f"{name}: header says {layer_count} layers, found {len(layers)}")
    return layers


# Layers whose weights live in the .bin, with the param ids of (num_output, weight_data_size, bias_term).
_WEIGHTED = {"Convolution": (0, 6, 5), "Deconvolution": (0, 6, 5), "InnerProduct": (0, 2, 1)}


def read_bin(layers: list[Layer], data: bytes, name: str = "<bin>") -> list[Layer]:
    """Fill `weight`/`bias` of every weighted layer from the .bin bytes (in place, returned)."""
    pos = 0

    def take(nbytes: int, what: str) -> bytes:
        nonlocal pos
        if pos + nbytes > len(data):
            raise LrpError(f"{name}: truncated at byte {pos} while reading {what}")
        chunk = data[pos : pos + nbytes]
        pos += nbytes
        return chunk

    for layer in layers:
        if layer.type not in _WEIGHTED:
            if layer.type in ("ConvolutionDepthWise", "BatchNorm", "Scale", "PReLU", "Embed"):
                raise LrpError(f"{name}: layer type {layer.type} ({layer.name}) is not supported by this reader")
            continue
        out_id, size_id, bias_id = _WEIGHTED[layer.type]
        num_output = int(layer.params.get(out_id, 0))
        size = int(layer.params.get(size_id, 0))
        (tag,) = struct.unpack("<I", take(4, f"the storage tag of {layer.name}"))
        if tag == TAG_FP16:
            raw = take(size * 2, f"the fp16 weights of {layer.name}")
            weight = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            take((-size * 2) % 4, "padding")
        elif tag == TAG_FP32:
            weight = np.frombuffer(take(size * 4, f"the weights of {layer.name}"), dtype="<f4").astype(np.float32)
        else:
            raise LrpError(f"{name}: layer {layer.name}: unsupported weight storage tag 0x{tag:08X} (at byte {pos - 4})")
        if layer.type in ("Convolution", "Deconvolution"):
            kw = int(layer.params.get(1, 0))
            kh = int(layer.params.get(11, kw))
            per_out = size // max(num_output, 1)
            if num_output * per_out != size or per_out % (kh * kw):
                raise LrpError(f"{name}: layer {layer.name}: {size} weights do not divide into {num_output} x {kh}x{kw}")
            weight = weight.reshape(num_output, per_out // (kh * kw), kh, kw)
        else:
            weight = weight.reshape(num_output, -1)
        layer.weight = weight
        if int(layer.params.get(bias_id, 0)):
            layer.bias = np.frombuffer(take(num_output * 4, f"the bias of {layer.name}"), dtype="<f4").astype(np.float32)
    if pos != len(data):
        raise LrpError(f"{name}: {len(data) - pos} bytes left over after the last layer: .bin and .param do not match")
    return layers


def load_ncnn(param_path: Path, bin_path: Path) -> list[Layer]:
    param_path, bin_path = Path(param_path), Path(bin_path)
    for p in (param_path, bin_path):
        if not p.is_file():
            raise LrpError(f"{p}: file not found")
    layers = parse_param(param_path.read_text(), str(param_path))
    return read_bin(layers, bin_path.read_bytes(), str(bin_path))


def convolutions(layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if layer.type == "Convolution"]


def write_ncnn(layers: list[Layer]) -> tuple[str, bytes]:
    """The inverse of load_ncnn (fp16 storage), for tests that need a small synthetic model."""
    lines = [MAGIC, f"{len(layers)} {len({b for layer in layers for b in layer.inputs + layer.outputs})}"]
    blob = bytearray()
    for layer in layers:
        params = " ".join(
            f"{-23300 - k}={len(v)},{','.join(str(x) for x in v)}" if isinstance(v, list) else f"{k}={v}"
            for k, v in layer.params.items()
        )
        lines.append(
            f"{layer.type} {layer.name} {len(layer.inputs)} {len(layer.outputs)} "
            f"{' '.join(layer.inputs + layer.outputs)} {params}".rstrip()
        )
        if layer.weight is not None:
            half = np.asarray(layer.weight, dtype="<f2").tobytes()
            blob += struct.pack("<I", TAG_FP16) + half + b"\0" * ((-len(half)) % 4)
            if layer.bias is not None:
                blob += np.asarray(layer.bias, dtype="<f4").tobytes()
    return "\n".join(lines) + "\n", bytes(blob)
