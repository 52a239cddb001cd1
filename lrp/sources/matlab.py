"""MATLAB v5 `.mat` files (what `save` writes by default): real numeric matrices and cell arrays
of them, e.g. USRNet's official `kernels_bicubicx234.mat`. No scipy: this is all lrp reads.

A file is a 128-byte header (text, then the endian mark "IM") followed by data elements, each an
8-byte tag (type, byte count) and its bytes padded to 8; a "small" element packs a count of at
most 4 bytes into the tag itself. miCOMPRESSED (15) holds one zlib-compressed element; miMATRIX
(14) holds array flags (class), dimensions, a name and the data in column-major order, or for a
cell array one miMATRIX per cell. Everything is checked against the bytes actually present, so a
damaged or hostile file gives a ValueError, never a huge allocation or a wrong matrix.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_CELL, _CHAR, _SPARSE, _STRUCT, _OBJECT = 1, 4, 5, 2, 3
_NUMERIC_CLASSES = set(range(6, 16))  # double, single, int8 ... uint64
_COMPLEX_FLAG = 0x0800
_MAX_BYTES = 256 << 20  # far above any kernel file; stops zip bombs
_MAX_DEPTH = 8


def read_mat(data: bytes, only=None) -> dict[str, object]:
    """Variable name -> float64 ndarray (numeric) or object ndarray of the same (cell).

    `only` (names): read just those variables and skip the others unparsed, so that a file
    whose other variables are of a class this reader refuses (MPII's `gt_valid.mat` holds a cell
    of joint names beside its matrices) still gives the ones asked for."""
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise ValueError("not a MATLAB v5 .mat file (no v5 header; v7.3/HDF5 files are not read)")
    endian = "<" if data[126:128] == b"IM" else ">"
    wanted = None if only is None else set(only)
    out: dict[str, object] = {}
    for typ, body in _elements(data, 128, len(data), endian):
        if typ == _MI_COMPRESSED:
            body = _inflate(body)
            typ, body = next(_elements(body, 0, len(body), endian), (None, b""))
        if typ == _MI_MATRIX:
            if wanted is not None and _matrix_name(body, endian) not in wanted:
                continue
            name, value = _matrix(body, endian, 0)
            out[name] = value
    return out


def _matrix_name(body: bytes, endian: str) -> str:
    """The name of a matrix element, from its first three sub-elements only."""
    parts = []
    for part in _elements(body, 0, len(body), endian):
        parts.append(part)
        if len(parts) == 3:
            return part[1].decode("latin1")
    raise ValueError("a matrix element without flags, dimensions and name")


def _inflate(body: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(body, _MAX_BYTES)
    except zlib.error as e:
        raise ValueError(f"a compressed element is damaged ({e})") from None
    if d.unconsumed_tail:
        raise ValueError(f"a compressed element inflates beyond {_MAX_BYTES >> 20} MiB")
    return raw


def _elements(buf: bytes, pos: int, end: int, endian: str):
    while pos + 8 <= end:
        typ, size = struct.unpack_from(endian + "II", buf, pos)
        if typ >> 16:  # small element: byte count in the upper half, data in the next 4 bytes
            typ, size = typ & 0xFFFF, typ >> 16
            if size > 4:
                raise ValueError(f"a small data element claims {size} bytes")
            yield typ, buf[pos + 4 : pos + 4 + size]
            pos += 8
            continue
        if pos + 8 + size > end:
            raise ValueError(f"a data element of {size} bytes runs past the end of the file")
        yield typ, buf[pos + 8 : pos + 8 + size]
        pos += 8 + size + (0 if typ == _MI_COMPRESSED else -size % 8)


def _matrix(body: bytes, endian: str, depth: int):
    if depth > _MAX_DEPTH:
        raise ValueError(f"cell arrays nested deeper than {_MAX_DEPTH}")
    parts = list(_elements(body, 0, len(body), endian))
    if len(parts) < 3 or len(parts[0][1]) < 8:
        raise ValueError("a matrix element without flags, dimensions and name")
    flags = struct.unpack_from(endian + "I", parts[0][1])[0]
    cls = flags & 0xFF
    dims = tuple(int(v) for v in np.frombuffer(parts[1][1], dtype=endian + "i4"))
    name = parts[2][1].decode("latin1")
    if not dims or min(dims) < 0:
        raise ValueError(f"variable {name!r}: bad dimensions {dims}")
    count = int(np.prod(dims, dtype=np.int64))
    if cls == _CELL:
        cells = [_matrix(d, endian, depth + 1)[1] for t, d in parts[3:] if t == _MI_MATRIX]
        if len(cells) != count:
            raise ValueError(f"cell array {name!r}: {len(cells)} cells for dimensions {dims}")
        arr = np.empty(count, dtype=object)
        arr[:] = cells
        return name, arr.reshape(dims, order="F")
    if flags & _COMPLEX_FLAG:
        raise ValueError(f"variable {name!r} is complex, not a real numeric matrix")
    if cls not in _NUMERIC_CLASSES:
        what = {_CHAR: "text", _SPARSE: "a sparse matrix", _STRUCT: "a struct", _OBJECT: "an object"}.get(cls, f"class {cls}")
        raise ValueError(f"variable {name!r} is {what}, not a real numeric matrix")
    if len(parts) < 4 or parts[3][0] not in _MI_TYPES:
        raise ValueError(f"variable {name!r}: no numeric data")
    typ, raw = parts[3]
    dtype = np.dtype(endian + _MI_TYPES[typ])
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"variable {name!r}: {len(raw)} bytes of data for dimensions {dims}")
    return name, np.frombuffer(raw, dtype=dtype).astype(np.float64).reshape(dims, order="F")
