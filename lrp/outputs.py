"""A step's outputs: where they go, what an earlier run already finished, and how they are written.

Everything a command writes passes through here: the document (stdout or `-o FILE`), the images
of degrade and superres (`--out-dir` or a resumable `lrp-runs/<command>-<hash>/`), charts and
tables. Writes are atomic (temporary file beside the target, then rename) and honour the umask.
The checks that protect the input live here too, so that every command refuses the same
things: an output that is an input file, an image folder that is, holds or lies inside an input
or origin image root. No torch here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

from lrp import __version__, geometry
from lrp.document import dumps, image_path, image_root, origin_root
from lrp.errors import LrpError, UsageError
from lrp.images import encode_png, png_name

# --------------------------------------------------------------------------------------------
# Atomic writes

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (threads write images)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore, under a lock
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    mkstemp creates the file 0600; it gets the mode an ordinary open() would give (0666 less the
    umask) before it takes the target's name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_png(arr, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, encode_png(arr))


# --------------------------------------------------------------------------------------------
# The document


def write_document(doc: dict, output: str | os.PathLike | None, stdout: IO | None = None) -> None:
    try:
        text = dumps(doc)
    except ValueError as e:  # NaN/Infinity computed by a step: never write them as bare NaN
        raise LrpError(f"the result holds a value JSON cannot carry ({e}); nothing written") from None
    if output is None or str(output) == "-":
        out = stdout if stdout is not None else sys.stdout
        try:
            out.write(text)
            out.write("\n")
            out.flush()
        except OSError as e:
            if stdout is None:
                _silence_stdout()
            raise LrpError(f"<stdout>: cannot write the document: {e.strerror or e}") from None
    else:
        try:
            atomic_write_text(output, text + "\n")
        except OSError as e:
            raise LrpError(f"{output}: cannot write: {e.strerror or e}") from None


def _silence_stdout() -> None:
    """After a failed write to stdout (full disk), point it at /dev/null so that Python's own
    flush at exit does not print a second error about the data still buffered."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def write_result(command: str, output, produce) -> None:
    """Write the document that `produce()` returns.

    With `--keep-going` failures (PartialFailure), list each failure on stderr, still write the
    document of the images that succeeded, then let the failure end the command with exit 1.
    """
    from lrp.errors import PartialFailure

    try:
        doc = produce()
    except PartialFailure as e:
        for line in e.failures:
            print(f"lrp {command}: failed: {line}", file=sys.stderr)
        write_document(e.doc, output)
        raise
    write_document(doc, output)


# --------------------------------------------------------------------------------------------
# Output files named on the command line


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_output_files(outputs: dict[str, object], inputs: Iterable[object], stdin: IO | None = None) -> None:
    """Refuse, before anything is written, an output file that is an input or a folder.

    `outputs` maps an option name (`-o`, `--plot`) to its value; `inputs` are the command's
    other path-like arguments (those naming no existing file are ignored). `stdin`, when the
    command reads it, counts as an input if it is a regular file (`lrp degrade < a.json -o a.json`).
    """
    stats = []
    for value in inputs:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, os.PathLike)) and str(item) not in ("", "-"):
                try:
                    st = os.stat(item)
                except (OSError, ValueError):
                    continue
                if stat.S_ISREG(st.st_mode):
                    stats.append(st)
    try:
        st = os.fstat(stdin.fileno())
        if stat.S_ISREG(st.st_mode):
            stats.append(st)
    except (AttributeError, OSError, ValueError):
        pass  # no real stdin (closed, or a test's in-memory one)
    for option, value in outputs.items():
        if value is None or str(value) == "-":
            continue
        try:
            st = os.stat(value)
        except (OSError, ValueError):
            continue  # a new file
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{option} {value}: is a folder; give a file name")
        if any(_same_file(st, s) for s in stats):
            raise UsageError(f"{option} {value}: is an input of this command; refusing to write over it")


# --------------------------------------------------------------------------------------------
# The image folder of a step


def run_hash(command: str, doc: dict, args: dict) -> str:
    """What determines the output: the input document without times (when each step ran, and how
    long it took), the arguments, the version.

    The history's times are left out so that re-running the same pipe lands in the same folder
    and resumes; `image_root` stays in, since it says which pixels are read.
    """
    from lrp.shard import run_identity

    content = run_identity(doc)  # every shard of one run shares the run's folder
    if content is doc and isinstance(doc.get("lrp"), dict):
        content = dict(doc, lrp=dict(doc["lrp"], history=[{k: v for k, v in h.items() if k not in ("time", "timing")} for h in doc["lrp"].get("history") or []]))
    h = hashlib.sha256()
    h.update(command.encode())
    h.update(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode())
    h.update(json.dumps(args, sort_keys=True, default=str).encode())
    h.update(__version__.encode())
    return h.hexdigest()[:12]


def _relation(folder: Path, root: Path) -> str | None:
    if folder == root:
        return "is"
    if root in folder.parents:
        return "lies inside"
    if folder in root.parents:
        return "contains"
    return None


def resolve_out_dir(command: str, doc: dict, args: dict, out_dir: str | Path | None, label: str = "") -> Path:
    """The folder this step writes its images to; refuses one that could hit an input.

    An `--out-dir` may not be, contain or lie inside the input image root or the origin
    dataset's image root (a file_name such as `img/a.png` under a folder above the root would
    overwrite the input). The default `lrp-runs/...` folder is new by construction; `label`
    (the key arguments, e.g. the model) goes into its name so that folders can be told apart.
    """
    roots = {"input image folder": image_root(doc).resolve()}
    origin = origin_root(doc)
    if origin is not None:
        roots.setdefault("origin image folder", Path(origin).resolve())
    if out_dir is None:
        target = default_run_folder(command, doc, args, label)
    else:
        target = Path(out_dir)
    resolved = target.resolve()
    for what, root in roots.items():
        relation = _relation(resolved, root)
        if relation == "is" or (relation is not None and out_dir is not None):
            raise UsageError(f"--out-dir {target} {relation} the {what} {root}; refusing to write over the input")
    if resolved.exists() and not resolved.is_dir():
        raise UsageError(f"--out-dir {target}: is a file, not a folder")
    return resolved  # created by claim_out_dir, once every check has passed


RUNS_ROOT = Path("lrp-runs")
RUN_MANIFEST = ".lrp-run.json"


def _label_part(text: str) -> str:
    """`label` as it may appear in a folder name: letters, digits, `.`, `-` and `_` only."""
    out = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)
    return "-".join(part for part in out.split("-") if part)


def default_run_folder(command: str, doc: dict, args: dict, label: str = "") -> Path:
    """`lrp-runs/<command>-<label>-<hash>/`, e.g. `superres-realsr-df2k-x4-0123456789ab`.

    The hash alone decides which run a folder holds (the label only helps a reader), so a
    folder of an older version, named `<command>-<hash>`, is still found and resumed.
    """
    digest = run_hash(command, doc, args)
    old = RUNS_ROOT / f"{command}-{digest}"
    label = _label_part(label)
    if not label or old.is_dir():
        return old
    return RUNS_ROOT / f"{command}-{label}-{digest}"


def _utc_now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shard_of_run(doc: dict) -> str | None:
    record = (doc.get("lrp") or {}).get("shard")  # `lrp frames` claims a folder for videos, not a document
    return None if record is None else f"{record['index']}-of-{record['count']}"


def shard_marker(root: Path, shard: str) -> Path:
    """The file a finished shard leaves in the run folder it shares with its sibling shards."""
    return root / f".lrp-run.shard-{shard}.done"


def read_manifest(root: Path) -> dict | None:
    """The run manifest of a folder (None: there is none, or it is not a JSON object)."""
    try:
        found = json.loads((root / RUN_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def claim_out_dir(root: Path, command: str, doc: dict, args: dict) -> bool:
    """Mark `root` as holding the outputs of one run; True when that run is being resumed.

    A folder named with --out-dir may already hold images from a run with other settings; reusing
    them would silently mix degradations. So finished outputs are reused only when the folder's
    manifest names the same command and run hash (input and arguments), and a folder holding
    another run's outputs is refused. The manifest also says what the run is (for `lrp runs`):
    the arguments, the input document's sha256, when it started, and `complete` (false until
    `finish_run`, so a crashed or interrupted run stays incomplete). Shards of one run share the
    folder; each finished shard leaves its own marker file instead of rewriting the manifest.
    """
    import socket

    from lrp.shard import document_hash

    key = {"command": command, "run": run_hash(command, doc, args)}
    path = root / RUN_MANIFEST
    shard = _shard_of_run(doc)
    if path.exists():
        found = read_manifest(root)
        if found is None or {k: found.get(k) for k in key} != key:
            raise UsageError(
                f"--out-dir {root} holds the outputs of another run ({RUN_MANIFEST} differs); "
                "choose another folder or empty it"
            )
        if shard is not None:
            shard_marker(root, shard).unlink(missing_ok=True)
        elif found.get("complete") is False:
            _write_manifest(root, dict(found, resumed=_utc_now(), pid=os.getpid(), host=socket.gethostname()))
        return True
    manifest = dict(
        key,
        arguments=json.loads(json.dumps(args, sort_keys=True, default=str)),
        input=document_hash(doc),
        images=len(doc["images"]) if "images" in doc else None,
        started=_utc_now(),
        complete=False,
        version=__version__,
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    if shard is not None:
        manifest["shards"] = doc["lrp"]["shard"]["count"]
        manifest["images"] = None  # the images of the whole run are not known to one shard
    _write_manifest(root, manifest)
    return False


def _write_manifest(root: Path, manifest: dict) -> None:
    _write_in_run(root / RUN_MANIFEST, json.dumps(manifest) + "\n")


def _write_in_run(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise LrpError(f"--out-dir {path.parent}: cannot write: {e.strerror or e}") from None


def finish_run(root: Path, doc: dict) -> None:
    """Record that the step wrote every image of its run folder (after the last image)."""
    shard = _shard_of_run(doc)
    if shard is not None:
        _write_in_run(shard_marker(root, shard), _utc_now() + "\n")
        return
    found = read_manifest(root)
    if found is not None and found.get("complete") is not True:  # an old manifest gets the field too
        _write_manifest(root, dict(found, complete=True, finished=_utc_now()))


def check_image_size(size: tuple[int, int], where: str) -> None:
    """Refuse to make an image that PIL (and so the next step) would refuse to open.

    PIL raises DecompressionBombError above twice its MAX_IMAGE_PIXELS; asking for such an image
    (`--scale 1000`) would only run out of memory or write a file nothing can read.
    """
    from PIL import Image

    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    w, h = size
    if limit and w * h > limit:
        raise UsageError(f"{where}: the output would be {w}x{h} pixels, more than images can hold ({limit} pixels)")


@dataclass(frozen=True)
class Frame:
    """Where one image goes: its new size, where to sample the old one, and the step xform."""

    size: tuple[int, int]  # (w, h)
    sample_xform: list  # positions the resampler reads (MATLAB uses the requested scale)
    step_xform: list  # what the document records: old frame -> new frame


def reframed(doc: dict, frames: dict[int, Frame], image_root: Path) -> dict:
    """A copy of `doc` with GT and results in the new frames, PNG names, the new image root."""
    out = copy.deepcopy(doc)
    geometry.reframe_document(
        out,
        {iid: f.size for iid, f in frames.items()},
        {iid: f.step_xform for iid, f in frames.items()},
        {img["id"]: png_name(img["file_name"]) for img in doc["images"]},
    )
    out["lrp"]["image_root"] = str(image_root)
    return out


def output_targets(doc: dict, root: Path) -> dict[int, Path]:
    """Output PNG path per image; refuses names that collide or escape the output folder.

    Every input path is resolved here too, so that a file_name reaching outside the input image
    root is refused before the step writes anything.
    """
    targets, owner = {}, {}
    for img in doc["images"]:
        image_path(doc, img)
        target = (root / png_name(img["file_name"])).resolve()
        if root != target and root not in target.parents:
            raise LrpError(f"image {img['id']}: file_name {img['file_name']!r} points outside the image folder")
        if target in owner:
            raise LrpError(f"images {owner[target]} and {img['id']} would both be written to {target}")
        owner[target] = img["id"]
        targets[img["id"]] = target
    return targets


def finished_png(path: Path, size: tuple[int, int]) -> bool:
    """A PNG from an earlier run of the same step (writes are atomic, so it is whole)."""
    if not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size == tuple(size)
    except Exception:  # unreadable leftovers are simply redone
        return False


def drop_images(doc: dict, image_ids: set) -> dict:
    """Remove images with their annotations and results (in place); returns `doc`."""
    doc["images"] = [i for i in doc["images"] if i["id"] not in image_ids]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] not in image_ids]
    for key in ("detections", "poses"):
        doc["lrp"][key] = [r for r in doc["lrp"].get(key) or [] if r["image_id"] not in image_ids]
    return doc
