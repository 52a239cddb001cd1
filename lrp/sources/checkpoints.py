"""Official PyTorch and Detectron2 checkpoints, read without running code they might carry.

`.pth` files go through `torch.load(weights_only=True)`; Detectron2's `.pkl` files are plain
pickles of numpy arrays in dicts, read by an unpickler that knows only those classes, so a
hostile file is refused by the name of what it asks for before anything of it runs.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from lrp.errors import LrpError


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


# What a Detectron2 `.pkl` may name: numpy's array and scalar reconstructors (under their numpy
# 1.x and 2.x module names, protocols 0-5), dtypes, byte strings written by Python 3 at protocol
# 2 (`_codecs.encode`), and plain containers. Everything else (os.system, eval, any class with a
# __reduce__) is refused by name before it is called.
_PICKLE_ALLOWED = {
    *{(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")},
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    *{(m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset", "bytearray", "complex", "slice")},
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


class _Refused(Exception):
    pass


def read_pickle_of_arrays(path: Path):
    """A pickle that may hold only numpy arrays and plain containers (Detectron2's `.pkl`)."""
    with open(path, "rb") as f:
        try:
            return _ArraysOnlyUnpickler(f, encoding="latin1").load()
        except _Refused as e:
            raise LrpError(
                f"{path}: refuses to unpickle {e} (a Detectron2 .pkl holds only numpy arrays and plain containers)"
            ) from None


def read_detectron2_checkpoint(src: str | os.PathLike) -> dict:
    """The raw name -> array dict of a Detectron2 `.pkl` (numpy under "model") or `.pth`."""
    src = Path(src)
    try:
        if src.suffix == ".pkl":
            data = read_pickle_of_arrays(src)
        else:
            import torch

            data = torch.load(src, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LrpError(f"{src}: no such file") from None
    except LrpError:
        raise
    except Exception as e:  # pickle raises many types on a wrong file
        raise LrpError(f"{src}: not a readable Detectron2 checkpoint: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict):
        raise LrpError(f"{src}: expected a dict of tensors (under 'model'), got {type(data).__name__}")
    return data
