"""Fast JSON for the stream document: orjson where it gives the stdlib's value, the stdlib elsewhere.

The stdlib `json` module defines what a document means (`json.loads`, and
`json.dumps(separators=(",", ":"), ensure_ascii=False)` for writing); orjson is only a faster way
to the same value. bench/bench_evaluate.py measures both on a 5,000-image document.

- Reading: orjson parses integers beyond 64 bits as floats and refuses NaN/Infinity literals and
  numbers that overflow; the stdlib keeps the integer and reads the others. So a text with a run
  of 19 or more digits, or any text orjson refuses, is read by the stdlib (which also words the
  error messages).
- Writing: orjson writes NaN and Infinity as `null`, the stdlib as bare `NaN` (not JSON). We write
  neither: a non-finite number is refused with the path to it. Keys stay in order; values that
  orjson cannot write (integers beyond 64 bits, non-str keys, float subclasses) go through the
  stdlib, with the same refusal of non-finite numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from lrp.errors import LrpError

_LONG_DIGITS = re.compile(rb"\d{19,}")


def loads(text: str | bytes) -> Any:
    """json.loads' value, fast. Raises what json.loads raises."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
        return json.loads(text)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


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
    stack = [(value, None)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                raise LrpError(f"cannot write {v!r} at {_path_text(path)}: JSON has no NaN or Infinity")
        elif isinstance(v, dict):
            stack.extend((item, (path, k)) for k, item in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            # A list of plain numbers (keypoints, boxes) is summed at C speed: a finite sum means
            # every item is finite; anything else is looked at item by item.
            try:
                if math.isfinite(sum(v)):
                    continue
            except (TypeError, OverflowError):
                pass
            stack.extend((item, (path, i)) for i, item in reversed(list(enumerate(v))))


def _path_text(path) -> str:
    parts = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    text = "".join(reversed(parts)).lstrip(".")
    return text or "the top level"
