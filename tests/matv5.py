"""A tiny reader for MATLAB v5 .mat files (enough for cell arrays of real numeric matrices), so
tests can read the official USRNet kernel file without scipy, and a tiny writer (real double
matrices and cells of char arrays, as MATLAB's `save` lays them out), so tests can make files in
the format of the official MPII `gt_valid.mat`."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_NUMERIC = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CELL_CLASS = 1


def _elements(buf: bytes, endian: str):
    pos = 0
    while pos + 8 <= len(buf):
        typ, size = struct.unpack_from(endian + "II", buf, pos)
        if typ >> 16:  # small data element: size in the upper half, data in the tag's 4 bytes
            typ, size = typ & 0xFFFF, typ >> 16
            yield typ, buf[pos + 4 : pos + 4 + size]
            pos += 8
            continue
        yield typ, buf[pos + 8 : pos + 8 + size]
        pos += 8 + size + ((-size) % 8 if typ != _MI_COMPRESSED else 0)


def _matrix(data: bytes, endian: str):
    parts = list(_elements(data, endian))
    flags, dims, name = parts[0][1], parts[1][1], parts[2][1].decode("latin1")
    cls = flags[0] if endian == "<" else flags[3]
    shape = tuple(np.frombuffer(dims, dtype=endian + "i4"))
    if cls == _CELL_CLASS:
        cells = [_matrix(d, endian)[1] for t, d in parts[3:] if t == _MI_MATRIX]
        out = np.empty(len(cells), dtype=object)
        out[:] = cells
        return name, out.reshape(shape, order="F")
    typ, raw = parts[3]
    return name, np.frombuffer(raw, dtype=endian + _NUMERIC[typ]).reshape(shape, order="F")


def loadmat(path) -> dict:
    buf = open(path, "rb").read()
    endian = "<" if buf[126:128] == b"IM" else ">"
    out = {}
    for typ, data in _elements(buf[128:], endian):
        if typ == _MI_COMPRESSED:
            typ, data = next(_elements(zlib.decompress(data), endian))
        if typ == _MI_MATRIX:
            name, value = _matrix(data, endian)
            out[name] = value
    return out


# --------------------------------------------------------------------------------------------
# Writing (little-endian)

_MI_INT8, _MI_UINT16, _MI_INT32, _MI_UINT32, _MI_DOUBLE = 1, 4, 5, 6, 9
_CHAR_CLASS, _DOUBLE_CLASS = 4, 6


def _element(typ: int, data: bytes) -> bytes:
    return struct.pack("<II", typ, len(data)) + data + b"\0" * (-len(data) % 8)


def _matrix_element(name: str, value) -> bytes:
    """One miMATRIX: a str is a 1xN char array, a list a 1xN cell, anything else a double array."""
    if isinstance(value, str):
        cls, dims = _CHAR_CLASS, (1, len(value))
        body = [_element(_MI_UINT16, np.array([ord(c) for c in value], dtype="<u2").tobytes())]
    elif isinstance(value, list):
        cls, dims = _CELL_CLASS, (1, len(value))
        body = [_matrix_element("", v) for v in value]
    else:
        arr = np.asarray(value, dtype="<f8")
        arr = arr.reshape(arr.shape + (1,) * (2 - arr.ndim)) if arr.ndim < 2 else arr
        cls, dims = _DOUBLE_CLASS, arr.shape
        body = [_element(_MI_DOUBLE, arr.tobytes(order="F"))]
    head = [
        _element(_MI_UINT32, struct.pack("<II", cls, 0)),
        _element(_MI_INT32, np.array(dims, dtype="<i4").tobytes()),
        _element(_MI_INT8, name.encode("latin1")),
    ]
    return _element(_MI_MATRIX, b"".join(head + body))


def savemat(path, variables: dict, compress: bool = False) -> None:
    """Write `variables` (name -> numeric array, str or list of them) as a v5 .mat file;
    `compress` wraps each variable in miCOMPRESSED, as MATLAB's default `save` does."""
    text = b"MATLAB 5.0 MAT-file, written by lrp's tests"
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    out = [header]
    for name, value in variables.items():
        element = _matrix_element(name, value)
        if compress:
            packed = zlib.compress(element)
            element = struct.pack("<II", _MI_COMPRESSED, len(packed)) + packed
        out.append(element)
    with open(path, "wb") as f:
        f.write(b"".join(out))
