"""Where a step writes its images: `--out-dir`, or a resumable `lrp-runs/<command>-<hash>/`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lrp import __version__
from lrp.errors import UsageError


def run_hash(command: str, doc: dict, args: dict) -> str:
    """Covers the input document, the arguments and the version: same inputs, same folder.
    A step's timing (lrp.timing) differs on every run, so it is left out: it never breaks resume."""
    untimed = [{k: v for k, v in h.items() if k != "timing"} for h in doc.get("lrp", {}).get("history") or []]
    doc = dict(doc, lrp=dict(doc["lrp"], history=untimed)) if "lrp" in doc else doc
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


RUN_MANIFEST = ".lrp-run.json"


def claim_out_dir(root: Path, command: str, doc: dict, args: dict) -> bool:
    """Mark `root` as holding the outputs of one run; True when that run is being resumed.

    A folder named with --out-dir may already hold images from a run with other settings; reusing
    them would silently mix degradations. So finished outputs are reused only when the folder's
    manifest names the same command, input and arguments, and a folder holding another run's
    outputs is refused.
    """
    from lrp.document import atomic_write_text

    key = {"command": command, "run": run_hash(command, doc, args)}
    path = root / RUN_MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = None
        if found != key:
            raise UsageError(
                f"--out-dir {root} holds the outputs of another run ({RUN_MANIFEST} differs); "
                "choose another folder or empty it"
            )
        return True
    atomic_write_text(path, json.dumps(key) + "\n")
    return False
