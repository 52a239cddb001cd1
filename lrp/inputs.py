"""Where a step's input document comes from: a path, stdin, or (on a terminal) the sample.

Kept apart from lrp.document (the schema) so that the schema imports nothing that writes files:
the sample draws itself through lrp.outputs, and lrp.outputs serialises through lrp.document.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from lrp.document import adopt, parse_json, read_json_file
from lrp.errors import LrpError, UsageError


def load_document(
    source: str | None,
    *,
    images: str | os.PathLike | None = None,
    stdin: IO | None = None,
    allow_sample: bool = False,
    quiet: bool = False,
) -> dict:
    """Read a document from a path, `-`/None (stdin) or, on a terminal with no input, the sample.

    A plain COCO file (no `lrp` block) is adopted as the first stage of a pipeline: it needs
    `images` (the folder its `file_name`s are relative to).
    """
    stdin = stdin if stdin is not None else sys.stdin
    if source == "":
        raise UsageError("the input path is empty")
    if source in (None, "-"):
        if source is None and _is_terminal(stdin):
            if not allow_sample:
                raise UsageError("no input: give a document path, '-' or pipe one in")
            from lrp.sample import sample_document

            if not quiet:
                print("lrp: no input given: using the embedded sample dataset", file=sys.stderr)
            return sample_document()
        name = "<stdin>"
        text = _read_stdin(stdin)
        if not text.strip():
            raise LrpError("<stdin>: empty input, expected a COCO/lrp JSON document")
        data = parse_json(text, name)
    else:
        name = source
        data = read_json_file(source, name)
    return adopt(data, name, images=images)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False




def _read_stdin(stream) -> str | bytes:
    """The whole of stdin, as bytes where it is a real stream (the JSON parser decodes it)."""
    if stream is None:  # started with stdin closed (`0<&-`)
        raise LrpError("<stdin>: stdin is closed; give a document path")
    try:
        buffer = getattr(stream, "buffer", None)
        return buffer.read() if buffer is not None else stream.read()
    except ValueError:  # closed file object
        raise LrpError("<stdin>: stdin is closed; give a document path") from None
    except UnicodeDecodeError:
        raise LrpError("<stdin>: not valid JSON: not UTF-8 text") from None
    except OSError as e:
        raise LrpError(f"<stdin>: cannot read: {e.strerror or e}") from None
