"""The model registry: a plain dict from a model name to its ModelSpec.

Each task keeps its entries in its own `*_zoo.py` module (no torch imported there, so the
registry can be listed instantly); an entry names its builder as "module:function" with explicit
hyper-parameters, like segment-anything's `build_sam.py`, and carries its weights' metadata
(what they were trained on, where they come from, what they reported), like torchvision's
weight enums.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from lrp.errors import UsageError


@dataclass(frozen=True)
class WeightsInfo:
    file: str  # file name under the weights directory (`lrp weights path NAME`)
    source: str  # how a user gets it: "lrp weights fetch NAME" or "lrp weights convert ARCH FILE"
    licence: str
    trained_on: str  # data set, scale, degradation, keypoint set
    sha256: str | None = None  # of the converted .safetensors, when it is reproducible
    official_file: str | None = None  # the upstream checkpoint a converter reads
    metrics: dict = field(default_factory=dict)  # what the authors reported


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str  # "superres", "detect" or "pose"
    arch: str  # architecture key used by `lrp weights convert ARCH`
    builder: str  # "lrp.models.module:function", called with `kwargs`
    kwargs: dict = field(default_factory=dict)
    weights: WeightsInfo | None = None  # None: the model has no weights (bicubic)
    scale: int | None = None  # SR factor
    notes: str = ""

    def build(self):
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)(**self.kwargs)


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
            if spec.name in registry:
                raise RuntimeError(f"model {spec.name} registered twice")
            registry[spec.name] = spec
    return registry


REGISTRY: dict[str, ModelSpec] = _collect()


def get_model(name: str, task: str | None = None) -> ModelSpec:
    spec = REGISTRY.get(name)
    if spec is None or (task is not None and spec.task != task):
        import difflib

        names = sorted(n for n, s in REGISTRY.items() if task is None or s.task == task)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown model {name!r}; {hint}known {task or ''} models: {', '.join(names) or 'none yet'}")
    return spec
