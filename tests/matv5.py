"""A tiny reader for MATLAB v5 .mat files (enough for cell arrays of real numeric matrices), so
tests can read the official USRNet kernel file without scipy."""

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
