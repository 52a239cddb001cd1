"""`lrp runs`: the run folders of `degrade` and `superres` (what, when, size, complete or not),
and `lrp runs gc` to remove the incomplete ones and those no document uses any more.

A run folder is a folder holding a manifest (`.lrp-run.json`, written by lrp.outputs.claim_out_dir):
the command, the run hash, the arguments, the input document's sha256, the start time and
`complete`, set once the step has written its last image. A run whose process is still alive on
this machine is `running` and never removed. Manifests of older versions hold only the command
and the hash: their state is `unknown`, and `gc` removes them only as unreferenced.

`gc` is careful: it looks only at the folders directly inside the root that carry a manifest, never
follows a symbolic link (a linked folder is skipped, a link inside a run folder is removed, not
its target), and refuses a root with no run folder in it or that is itself a run folder. No torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.options import LrpGroup, step
from lrp.outputs import RUN_MANIFEST, RUNS_ROOT, read_manifest, shard_marker

app = typer.Typer(  # its help is the docstring of `command` below
    cls=LrpGroup,
    invoke_without_command=True,
    no_args_is_help=False,
)

STATES = ("complete", "incomplete", "running", "unknown")


@dataclass
class Run:
    path: Path
    manifest: dict
    state: str  # one of STATES
    images: int  # PNG files in the folder
    bytes: int  # the size of its files (links counted as links)

    @property
    def command(self) -> str:
        return str(self.manifest.get("command") or "?")

    def what(self) -> str:
        """The command and its key arguments, e.g. `superres realsr-df2k-x4`."""
        from lrp import degrade, superres

        labels = {"degrade": degrade.run_label, "superres": superres.run_label}
        args = self.manifest.get("arguments")
        try:
            return f"{self.command} {labels[self.command](args)}"
        except (KeyError, TypeError, ValueError):  # an older manifest, or another command
            return self.command

    def started(self) -> str | None:
        """The start time (ISO, UTC); for an older manifest, the time it was written."""
        if isinstance(self.manifest.get("started"), str):
            return self.manifest["started"]
        mtime = (self.path / RUN_MANIFEST).stat().st_mtime
        return _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def record(self) -> dict:
        m = self.manifest
        return {
            "folder": str(self.path),
            "what": self.what(),
            "command": self.command,
            "run": m.get("run"),
            "arguments": m.get("arguments"),
            "input": m.get("input"),
            "started": self.started(),
            "finished": m.get("finished"),
            "state": self.state,
            "complete": self.state == "complete",
            "images": self.images,
            "expected_images": m.get("images"),
            "bytes": self.bytes,
            "version": m.get("version"),
        }


# --------------------------------------------------------------------------------------------
# Reading the root


def check_root(root: Path) -> Path:
    """The resolved root; refuses one that is missing, not a folder or itself a run folder."""
    if not root.exists():
        hint = " (degrade and superres make it in the folder they run in)" if root == RUNS_ROOT else ""
        raise UsageError(f"--root {root}: no such folder{hint}")
    if not root.is_dir():
        raise UsageError(f"--root {root}: is not a folder")
    if (root / RUN_MANIFEST).exists():
        raise UsageError(f"--root {root}: is a run folder itself; give the folder that holds run folders (e.g. lrp-runs)")
    return root.resolve()


def find_runs(root: Path) -> list[Run]:
    """The run folders directly inside `root` (real folders with a manifest), oldest first."""
    root = check_root(root)
    runs = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):  # links (to folders or not) and files
                continue
            path = Path(entry.path)
            manifest = read_manifest(path)
            if manifest is None:
                continue
            images, size = _contents(path)
            runs.append(Run(path, manifest, run_state(path, manifest), images, size))
    return sorted(runs, key=lambda r: (r.started() or "", r.path.name))


def run_state(path: Path, manifest: dict) -> str:
    if "complete" not in manifest:
        return "unknown"
    shards = manifest.get("shards")
    if isinstance(shards, int) and shards > 0:
        done = all(shard_marker(path, f"{i}-of-{shards}").exists() for i in range(shards))
    else:
        done = manifest["complete"] is True
    if done:
        return "complete"
    if manifest.get("host") == socket.gethostname() and _alive(manifest.get("pid")):
        return "running"
    return "incomplete"


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def _contents(path: Path) -> tuple[int, int]:
    """PNG files and bytes under `path`, without following links."""
    images = size = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            size += st.st_size
            if stat.S_ISREG(st.st_mode) and name.lower().endswith(".png"):
                images += 1
    return images, size


def size_text(n: int) -> str:
    """Bytes as `du -h` would put them, in powers of 1024: 512 B, 3.4 KiB, 12.0 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _local_time(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        t = _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return iso
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------------------------
# What gc removes


def referenced_folders(documents: list[str]) -> set[Path]:
    """The folders the documents read images from: `lrp.image_root` and `lrp.origin_root`."""
    from lrp.document import origin_root
    from lrp.inputs import load_document

    folders = set()
    for source in documents:
        if source == "-":
            raise UsageError("--unreferenced takes document paths, not stdin")
        doc = load_document(source)
        for root in (doc["lrp"].get("image_root"), origin_root(doc)):
            if root:
                folders.add(Path(root).resolve())
    return folders


def gc_plan(root: Path, documents: list[str] | None = None) -> list[tuple[Run, str]]:
    """(run, why) for every run folder `gc` removes: incomplete ones, and with `documents` those
    that none of them reads images from. Running and referenced folders always stay."""
    runs = find_runs(root)
    if not runs:
        raise UsageError(f"--root {root}: is not an lrp-runs folder (no run folder with a {RUN_MANIFEST} in it); nothing removed")
    keep = referenced_folders(documents) if documents is not None else set()
    plan = []
    for run in runs:
        if run.state == "running" or any(run.path == k or run.path in k.parents for k in keep):
            continue
        if run.state == "incomplete":
            plan.append((run, "incomplete"))
        elif documents is not None:
            plan.append((run, "unreferenced"))
    return plan


def remove_run(run: Run, root: Path) -> None:
    """Remove one run folder; only a real folder directly inside `root`."""
    path, root = run.path, root.resolve()
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or path.resolve().parent != root:
        raise LrpError(f"{path}: is not a folder directly inside {root}; not removed")
    try:
        shutil.rmtree(path)  # symlink-attack-safe on Linux: links inside are removed, never followed
    except OSError as e:
        raise LrpError(f"{path}: cannot remove: {e.strerror or e}") from None


# --------------------------------------------------------------------------------------------
# CLI

Root = Annotated[Path, typer.Option("--root", help="The folder of run folders.")]


COLUMNS = ["run", "what", "started", "state", "images", "size"]
# What a narrower terminal leaves out first: the run folder's name says what it is, in short.
NARROWER = (COLUMNS, [c for c in COLUMNS if c != "what"], ["run", "state", "images", "size"])


def _table(runs: list[Run], columns: list[str], title: str):
    from lrp.tables import Table

    rows = []
    for r in runs:
        cells = {
            "run": r.path.name, "what": r.what(), "started": _local_time(r.started()), "state": r.state,
            "images": r.images, "size": size_text(r.bytes),
        }
        rows.append([cells[c] for c in columns])
    # Only `what` shortens: the folder name is what a reader types, so it is never cut.
    return Table(title, columns, rows, text_columns=len(columns) - 2, shrinkable=("what",))


def print_table(runs: list[Run], root: Path, out=None) -> None:
    from lrp.tables import _line_width, layout, render_terminal, terminal_width

    out = out if out is not None else sys.stdout
    width = terminal_width(out)
    for columns in NARROWER:
        table = _table(runs, columns, f"run folders in {root}")
        if width is None or _line_width(layout(table, width).widths) <= width:
            break
    total = sum(r.bytes for r in runs)
    folders = f"{len(runs)} run folder{'' if len(runs) == 1 else 's'}"
    render_terminal([table], out, notes=[f"{folders}, {size_text(total)}; remove the incomplete ones with `lrp runs gc`"])


@app.callback()
@step("runs")
def command(
    ctx: typer.Context,
    root: Root = RUNS_ROOT,
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="[table|markdown|csv|json]", help="A table that fits the terminal, markdown, or csv/json (every field)."),
    ] = "table",
):
    """List the run folders of degrade and superres (what, when, state, images, size); gc removes old ones.

    A run is complete once its step wrote every image; an interrupted or crashed run stays
    incomplete, and a run still going on this machine shows as running. `lrp runs gc` removes
    the incomplete run folders, and with --unreferenced those no given document uses.

    Example:

        lrp runs

        lrp runs --root /data/lrp-runs --format json | jq '.[] | select(.state != "complete")'
    """
    from lrp.tables import check_format, emit

    if ctx.invoked_subcommand is not None:
        return
    check_format(fmt)
    runs = find_runs(root)
    if fmt == "table":
        print_table(runs, root)
        return
    records = [r.record() for r in runs]
    csv_records = [dict(r, arguments=json.dumps(r["arguments"], sort_keys=True)) for r in records]
    table = _table(runs, COLUMNS, f"run folders in {root}")
    emit([table], fmt, csv_columns=list(records[0]) if records else ["folder"], records=csv_records, json_data=records)


@app.command("gc")
@step("runs")
def gc(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(help="With --unreferenced: the documents whose image folders to keep.", show_default=False),
    ] = None,
    root: Root = RUNS_ROOT,
    unreferenced: Annotated[
        bool, typer.Option("--unreferenced", metavar="", help="Also remove the complete run folders that none of DOCUMENTS reads images from.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", metavar="", help="Say what would be removed; remove nothing.")] = False,
):
    """Remove incomplete run folders, and with --unreferenced those no given document uses.

    A folder is kept while its run is still going on this machine, and whenever one of the
    DOCUMENTS reads its images (lrp.image_root or lrp.origin_root). Only folders directly inside
    the root that carry a .lrp-run.json are considered; symbolic links are never followed.

    Example:

        lrp runs gc --dry-run

        lrp runs gc --unreferenced results/*.json
    """
    if documents and not unreferenced:
        raise UsageError("documents given without --unreferenced; add it to remove the folders they do not use")
    if unreferenced and not documents:
        raise UsageError("--unreferenced needs the documents whose image folders to keep")
    resolved = check_root(root)
    plan = gc_plan(root, documents if unreferenced else None)
    verb = "would remove" if dry_run else "removed"
    for run, why in plan:
        if not dry_run:
            remove_run(run, resolved)
        print(f"{verb} {run.path} ({why}, {size_text(run.bytes)})")
    total = sum(run.bytes for run, _ in plan)
    print(f"lrp runs gc: {verb} {len(plan)} run folder{'' if len(plan) == 1 else 's'}, {size_text(total)}", file=sys.stderr)
