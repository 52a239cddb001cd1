"""Where a step writes its images: `--out-dir`, or a resumable `lrp-runs/<command>-<hash>/`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lrp import __version__
from lrp.errors import UsageError


def run_hash(command: str, doc: dict, args: dict) -> str:
    """Covers the input document, the arguments and the version: same inputs, same folder."""
    h = hashlib.sha256()
    h.update(command.encode())
    h.update(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode())
    h.update(json.dumps(args, sort_keys=True, default=str).encode())
    h.update(__version__.encode())
    return h.hexdigest()[:12]


def resolve_out_dir(command: str, doc: dict, args: dict, out_dir: str | Path | None) -> Path:
    source_root = Path(doc["lrp"]["image_root"]).resolve()
    if out_dir is None:
        target = Path("lrp-runs") / f"{command}-{run_hash(command, doc, args)}"
    else:
        target = Path(out_dir)
    resolved = target.resolve()
    if resolved == source_root:
        raise UsageError(f"--out-dir {target} is the input image folder; refusing to write over the input")
    try:
        resolved.relative_to(source_root)
        inside = True
    except ValueError:
        inside = False
    if inside and out_dir is not None:
        raise UsageError(f"--out-dir {target} is inside the input image folder {source_root}; choose another folder")
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved
