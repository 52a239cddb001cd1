"""A small, independent numpy interpreter of TF.js graph ops: the reference for TF.js ports.

It executes `model.json` node by node with TensorFlow's documented semantics (NHWC, 'SAME'
padding with the extra row after, legacy bilinear resize, TopK ties to the lower index), sharing
no code with the PyTorch modules it checks. Only the ops CenterNet, PoseNet and NanoDet (an
ONNX export: NCHW transposes, explicit pads, LeakyReLU, SplitV) use are here.
"""

from __future__ import annotations

import math

import numpy as np


def _same_pads(size: int, k: int, s: int, dilation: int = 1) -> tuple[int, int]:
    k = (k - 1) * dilation + 1
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad_input(x, kh, kw, strides, padding, dilations=(1, 1)):
    if padding == "SAME":
        ph = _same_pads(x.shape[1], kh, strides[0], dilations[0])
        pw = _same_pads(x.shape[2], kw, strides[1], dilations[1])
        x = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    return x


def _windows(x, kh, kw, strides, padding):
    """Pad as TF does, then yield (i, j, the input seen by kernel tap (i, j)) and the output size."""
    x = _pad_input(x, kh, kw, strides, padding)
    n, h, w, _ = x.shape
    oh = (h - kh) // strides[0] + 1
    ow = (w - kw) // strides[1] + 1
    taps = (
        (i, j, x[:, i : i + strides[0] * (oh - 1) + 1 : strides[0], j : j + strides[1] * (ow - 1) + 1 : strides[1], :])
        for i in range(kh)
        for j in range(kw)
    )
    return taps, (n, oh, ow)


def conv2d(x, w, strides, padding):
    """x NHWC, w HWIO."""
    taps, (n, oh, ow) = _windows(x, w.shape[0], w.shape[1], strides, padding)
    out = np.zeros((n, oh, ow, w.shape[3]), dtype=np.float64)
    for i, j, patch in taps:
        out += patch @ w[i, j]
    return out


def depthwise(x, w, strides, padding):
    """w H x W x C x multiplier."""
    c, mult = w.shape[2], w.shape[3]
    taps, (n, oh, ow) = _windows(x, w.shape[0], w.shape[1], strides, padding)
    out = np.zeros((n, oh, ow, c * mult), dtype=np.float64)
    for i, j, patch in taps:
        out += (patch[..., :, None] * w[i, j]).reshape(n, oh, ow, c * mult)
    return out


def resize_bilinear_legacy(x, size):
    """align_corners=False, half_pixel_centers=False."""
    n, h, w, c = x.shape
    oh, ow = size
    out = np.zeros((n, oh, ow, c), dtype=np.float64)
    for yo in range(oh):
        sy = yo * h / oh
        y0 = int(math.floor(sy))
        y1 = min(y0 + 1, h - 1)
        dy = sy - y0
        for xo in range(ow):
            sx = xo * w / ow
            x0 = int(math.floor(sx))
            x1 = min(x0 + 1, w - 1)
            dx = sx - x0
            top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * dx
            bottom = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * dx
            out[:, yo, xo] = top + (bottom - top) * dy
    return out


def resize_bilinear_half_pixel(x, size):
    """align_corners=False, half_pixel_centers=True: source (o + 0.5) * in / out - 0.5, clamped."""
    n, h, w, c = x.shape
    oh, ow = size

    def axis(o, i):
        src = np.clip((np.arange(o) + 0.5) * (i / o) - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), i - 1)
        return lo, np.minimum(lo + 1, i - 1), src - lo

    y0, y1, fy = axis(oh, h)
    x0, x1, fx = axis(ow, w)
    out = np.zeros((n, oh, ow, c), dtype=np.float64)
    for yo in range(oh):
        for xo in range(ow):
            top = x[:, y0[yo], x0[xo]] * (1 - fx[xo]) + x[:, y0[yo], x1[xo]] * fx[xo]
            bottom = x[:, y1[yo], x0[xo]] * (1 - fx[xo]) + x[:, y1[yo], x1[xo]] * fx[xo]
            out[:, yo, xo] = top * (1 - fy[yo]) + bottom * fy[yo]
    return out


def max_pool(x, k, strides, padding):
    kh, kw = k
    if padding == "SAME":
        ph = _same_pads(x.shape[1], kh, strides[0])
        pw = _same_pads(x.shape[2], kw, strides[1])
        x = np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=-np.inf)
    n, h, w, c = x.shape
    oh = (h - kh) // strides[0] + 1
    ow = (w - kw) // strides[1] + 1
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, x[:, i : i + strides[0] * (oh - 1) + 1 : strides[0], j : j + strides[1] * (ow - 1) + 1 : strides[1]])
    return out


def _fused(y, ops, extra):
    for op in ops:
        if op == "BiasAdd":
            y = y + extra[0]
        elif op == "Relu":
            y = np.maximum(y, 0)
        elif op == "Relu6":
            y = np.clip(y, 0, 6)
        elif op == "Prelu":
            y = np.where(y > 0, y, y * extra[1])
        else:
            raise NotImplementedError(f"fused op {op}")
    return y


def _stride_hw(attrs, key="strides"):
    s = attrs.get(key, [1, 1, 1, 1])
    return (s[1], s[2])


def run_graph(graph, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    """Execute `graph` (lrp.sources.tfjs.GraphModel) in float64; returns the named outputs."""
    values: dict[str, object] = {k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()}
    for name, w in graph.weights.items():
        values[name] = w.astype(np.float64) if w.dtype == np.float32 else w

    def get(ref):
        if ref.startswith("^"):
            return None
        name, _, port = ref.partition(":")
        v = values[name]
        if isinstance(v, tuple):
            return v[int(port or 0)]
        return v

    for node in graph.nodes:
        if node.name in values:
            continue
        a = node.attrs
        ins = [get(i) for i in node.inputs if not i.startswith("^")]
        op = node.op
        if op in ("Placeholder", "Const"):
            continue
        if op == "Identity":
            out = ins[0]
        elif op in ("_FusedConv2D", "Conv2D"):
            out = conv2d(ins[0], ins[1], _stride_hw(a), a["padding"])
            if op == "_FusedConv2D":
                out = _fused(out, a.get("fused_ops", []), ins[2:])
        elif op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            out = depthwise(ins[0], ins[1], _stride_hw(a), a["padding"])
            if op == "FusedDepthwiseConv2dNative":
                out = _fused(out, a.get("fused_ops", []), ins[2:])
        elif op == "Add" or op == "AddV2" or op == "BiasAdd":
            out = ins[0] + ins[1]
        elif op == "Sub":
            out = ins[0] - ins[1]
        elif op == "Mul":
            out = ins[0] * ins[1]
        elif op == "RealDiv":
            out = ins[0] / ins[1]
        elif op == "Relu":
            out = np.maximum(ins[0], 0)
        elif op == "Relu6":
            out = np.clip(ins[0], 0, 6)
        elif op == "Sigmoid":
            out = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "Mean":
            axes = tuple(int(i) for i in np.atleast_1d(ins[1]))
            out = ins[0].mean(axis=axes, keepdims=bool(a.get("keep_dims", False)))
        elif op == "ConcatV2":
            out = np.concatenate(ins[:-1], axis=int(ins[-1]))
        elif op == "ResizeBilinear":
            assert not a.get("align_corners")
            resize = resize_bilinear_half_pixel if a.get("half_pixel_centers") else resize_bilinear_legacy
            out = resize(ins[0], [int(v) for v in ins[1]])
        elif op == "LeakyRelu":
            out = np.where(ins[0] > 0, ins[0], ins[0] * a.get("alpha", 0.2))
        elif op in ("Pad", "PadV2"):
            fill = float(ins[2]) if op == "PadV2" else 0.0
            out = np.pad(ins[0], [tuple(int(v) for v in row) for row in ins[1]], constant_values=fill)
        elif op == "Transpose":
            out = np.transpose(ins[0], [int(v) for v in ins[1]])
        elif op == "SplitV":
            sizes, axis = [int(v) for v in ins[1]], int(ins[2])
            out = tuple(np.split(ins[0], np.cumsum(sizes)[:-1], axis=axis))
        elif op == "SparseToDense":
            out = np.full([int(v) for v in np.atleast_1d(ins[1])], ins[3], dtype=np.asarray(ins[3]).dtype)
            out[tuple(np.asarray(ins[0], dtype=np.int64).T)] = ins[2]
        elif op == "MaxPool":
            out = max_pool(ins[0], (a["ksize"][1], a["ksize"][2]), _stride_hw(a), a["padding"])
        elif op == "Reshape":
            out = np.reshape(ins[0], [int(v) for v in np.atleast_1d(ins[1])])
        elif op == "Equal":
            out = ins[0] == ins[1]
        elif op == "Cast":
            dst = a.get("DstT", "DT_FLOAT")
            out = ins[0].astype(np.float64 if dst == "DT_FLOAT" else np.int64)
        elif op == "TopKV2":
            k = int(ins[1])
            idx = np.argsort(-ins[0], axis=-1, kind="stable")[..., :k]
            out = (np.take_along_axis(ins[0], idx, -1), idx)
        elif op == "ExpandDims":
            out = np.expand_dims(ins[0], int(ins[1]))
        elif op == "FloorDiv":
            out = np.floor_divide(ins[0], ins[1])
        elif op == "FloorMod":
            out = np.mod(ins[0], ins[1])
        elif op == "GatherV2":
            out = np.take(ins[0], ins[1].astype(np.int64), axis=int(ins[2]))
        elif op == "StridedSlice":
            out = _strided_slice(ins[0], ins[1], ins[2], ins[3], a)
        else:
            raise NotImplementedError(f"op {op} ({node.name})")
        values[node.name] = out
    return {o: get(o) for o in outputs}


def _strided_slice(x, begin, end, strides, a):
    if a.get("ellipsis_mask", 0) or a.get("new_axis_mask", 0) or a.get("shrink_axis_mask", 0):
        raise NotImplementedError("StridedSlice masks beyond begin/end")
    sl = []
    for d in range(len(begin)):
        b = None if (a.get("begin_mask", 0) >> d) & 1 else int(begin[d])
        e = None if (a.get("end_mask", 0) >> d) & 1 else int(end[d])
        sl.append(slice(b, e, int(strides[d])))
    return x[tuple(sl)]
