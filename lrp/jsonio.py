"""Fast JSON for the stream document: orjson where it gives the stdlib's value, the stdlib elsewhere.

The stdlib `json` module defines what a document means (`json.loads`, and
`json.dumps(separators=(",", ":"), ensure_ascii=False)` for writing); orjson is only a faster way
to the same value. bench/bench_evaluate.py measures both on a 5,000-image document.

- Reading: orjson parses integers beyond 64 bits as floats and refuses NaN/Infinity literals and
  numbers that overflow; the stdlib keeps the integer and reads the others. So a text with an
  integer of 19 or more digits, or any text orjson refuses, is read by the stdlib (which also
  words the error messages).
- Writing: orjson writes NaN and Infinity as `null`, the stdlib as bare `NaN` (not JSON). We write
  neither: a non-finite number is refused with the path to it. Keys stay in order; values that
  orjson cannot write (integers beyond 64 bits, non-str keys, float subclasses) go through the
  stdlib, with the same refusal of non-finite numbers.
"""

from __future__ import annotations

import gc
import json
import math
from typing import Any

from lrp.errors import LrpError

# Every digit as "0", so that one fast search finds a run of 19 digits anywhere.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def loads(text: str | bytes, parse_constant=None) -> Any:
    """json.loads' value, fast. Raises what json.loads raises. `parse_constant` goes to the
    stdlib, which reads every text with NaN/Infinity literals (orjson refuses them)."""
    # Parsing builds millions of containers and no cycles: the cyclic garbage collector would
    # walk the growing document again and again (4x the parse time on a 25 MB document).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _loads(text, parse_constant)
    finally:
        if was_enabled:
            gc.enable()


def _loads(text: str | bytes, parse_constant=None) -> Any:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
        return json.loads(text, parse_constant=parse_constant)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not _has_long_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_constant=parse_constant)


def _has_long_integer(data: bytes) -> bool:
    """Is there an integer of 19 or more digits (a run not in a fraction, not before . e E)?

    Conservative: a long run of digits inside a string also counts (the stdlib then reads it).
    """
    zeros = data.translate(_DIGITS_AS_ZERO)
    start = zeros.find(_LONG_RUN)
    while start >= 0:
        begin = start
        while begin > 0 and zeros[begin - 1] == 0x30:
            begin -= 1
        end = start + len(_LONG_RUN)
        while end < len(zeros) and zeros[end] == 0x30:
            end += 1
        in_fraction = begin > 0 and zeros[begin - 1] == 0x2E  # '.'
        if not in_fraction and (end == len(zeros) or zeros[end] not in b".eE"):
            return True
        start = zeros.find(_LONG_RUN, end)
    return False


def dumps(value: Any) -> str:
    """Compact JSON text, as json.dumps(separators=(",", ":"), ensure_ascii=False) would parse back.

    Raises LrpError naming the first NaN or infinity (JSON has no such numbers).
    """
    check_finite(value)
    try:
        import orjson

        return orjson.dumps(value).decode("utf-8")
    except (ImportError, TypeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_finite(value: Any) -> None:
    """LrpError naming the path of the first NaN/Infinity in a JSON-like value."""
    if not _finite(value):
        raise LrpError(f"cannot write {_first_bad(value, None)}: JSON has no NaN or Infinity")


def _finite(v) -> bool:
    """Are all numbers in v finite? The fast pass (no paths kept)."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        v = v.values()
    elif not isinstance(v, (list, tuple)):
        return True
    else:
        # A list of plain numbers (keypoints, boxes) is summed at C speed: a finite sum means
        # every item is finite; anything else is looked at item by item.
        try:
            if math.isfinite(sum(v)):
                return True
        except (TypeError, OverflowError):
            pass
    for x in v:
        if isinstance(x, (float, dict, list, tuple)) and not _finite(x):
            return False
    return True


def _first_bad(v, path) -> str | None:
    """'nan at lrp.poses[3].score' for the first non-finite number (the slow pass, on failure)."""
    if isinstance(v, float):
        return None if math.isfinite(v) else f"{v!r} at {_path_text(path)}"
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, (list, tuple)) else ()
    for k, x in items:
        found = _first_bad(x, (path, k))
        if found:
            return found
    return None


def _path_text(path) -> str:
    parts = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    text = "".join(reversed(parts)).lstrip(".")
    return text or "the top level"
