"""`--device`, `--precision` and weights loading, shared by every model command.

Imports torch, so only commands that run models import this module (inside the command).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lrp.errors import LrpError, UsageError
from lrp.models import weights_dir, weights_path  # noqa: F401  (torch-free, so they live there)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision not in DTYPES:
        raise UsageError(f"--precision {precision!r}: expected one of {', '.join(DTYPES)}")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs CUDA; use bf16 on the CPU")
    return DTYPES[precision]


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise LrpError(f"{path}: models load only .safetensors files (convert with `lrp weights convert`)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise LrpError(f"{path}: not a readable safetensors file: {e}") from None


def load_model(spec, weights: str | os.PathLike | None = None, device: str = "auto", precision: str = "fp32"):
    """Build a registry model, strict-load its .safetensors, move it to the device and precision,
    in eval mode: (model, torch.device, torch.dtype). Every command that runs a network uses this."""
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    path = weights_path(spec, weights)
    net = spec.build()
    load_strict(net, load_state_dict(path), f"{path} ({spec.name})")
    return net.to(device=dev, dtype=dtype).eval(), dev, dtype


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> torch.nn.Module:
    """Strict load with a one-line error listing a few missing/unexpected keys or bad shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise LrpError(f"{name}: weights do not fit this architecture: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model
