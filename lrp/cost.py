"""`lrp cost`: parameters and multiply-adds of the registry's models at a given input size.

Counted from the module graph with random weights (no checkpoint needed): one forward pass of a
batch of one under `torch.utils.flop_counter.FlopCounterMode`, which sees every convolution and
matrix product at the aten level (module or functional); its FLOPs are 2 per multiply-add, so
MACs = FLOPs / 2. Element-wise work (BN, activations, additions, resampling) and FFTs are not
counted, as in the papers: "GFLOPs" in HRNet, SimpleBaseline, CAL and most pose/SR tables are
multiply-adds of convolutions and linear layers. HRNet's own tool (`get_model_summary`) divides
by 2^30, not 10^9: its 7.1 GFLOPs for HRNet-W32 256x192 are 7.645e9 MACs / 2^30. Both are shown.

Graphs without data-dependent steps run on the meta device (shapes only, instant); detectors
with proposal/NMS steps run on the CPU, so their heads count the proposals random weights give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.evaluate import Format, TableOutput
from lrp.options import Quiet

# Default input (w, h) per task where the registry entry has none: SR at 320x180 (x4 gives the
# 1280x720 output that SR challenges count FLOPs at), detectors at Detectron2's 1333 long side
# padded to 32, CenterNet and NanoDet at their graph inputs (512x512, 416x416).
DEFAULT_SIZES = {"superres": (320, 180), "detect": (1344, 800), "centernet-mbv3": (512, 512), "nanodet": (416, 416)}
GIB = 2**30


@dataclass
class Cost:
    model: str
    task: str
    size: tuple[int, int]  # (w, h) of the input
    params: int
    macs: int | None  # None: the model has no network (bicubic)
    device: str  # where the counting pass ran: meta or cpu
    by_op: dict  # aten op -> MACs


def default_size(spec) -> tuple[int, int]:
    size = spec.kwargs.get("input_size")
    if size:
        return int(size[0]), int(size[1])
    return DEFAULT_SIZES.get(spec.name) or DEFAULT_SIZES[spec.task]


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-size {text!r}: expected WxH, e.g. 192x256") from None
    if w < 1 or h < 1:
        raise UsageError(f"--input-size {text!r}: width and height must be positive")
    return w, h


# --------------------------------------------------------------------------------------------
# How to run each architecture on a dummy input (a plain dict: arch -> (runner, meta ok))


def _plain(net, x, spec):
    return net(x)


def _srmd(net, x, spec):
    from lrp.models import srmd

    return srmd.conditioned(net, scale=net.scale, noise=0.0, device=x.device, dtype=x.dtype)(x)


def _usrnet(net, x, spec):
    import torch

    from lrp.kernels import fit_decimation_kernel

    # The network itself (the numpy border padding of `conditioned` is not part of it).
    scale = 4
    k = torch.as_tensor(fit_decimation_kernel(scale), dtype=torch.float32, device=x.device)[None, None]
    sigma = torch.zeros(x.shape[0], 1, 1, 1, device=x.device)
    return net(x, k, scale, sigma)


def _rcnn(net, x, spec):
    return net(x, [tuple(x.shape[-2:])])


RUNNERS: dict[str, tuple[Callable, bool]] = {
    "hrnet-w32": (_plain, True),
    "hrnet-w48": (_plain, True),
    "hrnet-w32-simcc": (_plain, True),
    "hrnet-w32-srhead": (_plain, True),
    "movenet-thunder": (_plain, False),
    "movenet-lightning": (_plain, False),
    "posenet": (_plain, True),
    "esrgan": (_plain, True),
    "temporal-sr": (_plain, True),
    "temporal-pose": (_plain, True),
    "srmd": (_srmd, True),
    "usrnet": (_usrnet, True),
    "usrnet-tiny": (_usrnet, True),
    "centernet-mbv3": (_plain, True),
    "nanodet": (_plain, True),
    "faster-rcnn-r101-fpn": (_rcnn, False),
    "faster-rcnn-r50-fpn": (_rcnn, False),
    "mask-rcnn-r101-fpn": (_rcnn, False),
    "mask-rcnn-r50-fpn": (_rcnn, False),
}


# --------------------------------------------------------------------------------------------
# Counting


def count_params(net) -> int:
    """Trainable tensors (weights, biases, BN scales and shifts), not buffers (BN statistics)."""
    return sum(p.numel() for p in net.parameters())


def count_macs(run: Callable[[], object]) -> tuple[int, dict]:
    """Multiply-adds of convolutions and matrix products in `run()`, total and per aten op."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    by_op = {str(op).removeprefix("aten."): int(n) // 2 for op, n in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()) // 2, by_op


def count_macs_hooks(net, run: Callable[[], object]) -> int:
    """The same from forward hooks on Conv2d / ConvTranspose2d / Linear modules (HRNet's rule)."""
    import torch
    from torch import nn

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            # Every input pixel is spread over k x k outputs of Cout/groups channels.
            cin, hi, wi = inputs[0].shape[-3:]
            total += cin * hi * wi * module.weight.shape[1] * module.weight[0, 0].numel()
        elif isinstance(module, nn.Conv2d):
            total += output.shape[0] * output.shape[-2] * output.shape[-1] * module.weight.numel()
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def build_random(spec, device: str):
    """The registry's network with seeded random weights (nothing is loaded)."""
    import torch

    torch.manual_seed(0)
    with torch.device(device):
        net = spec.build()
    return net.eval()


def model_cost(name: str, size: tuple[int, int] | None = None) -> Cost:
    import torch

    from lrp.models import get_model

    spec = get_model(name)
    size = size or default_size(spec)
    if spec.arch == "bicubic":
        return Cost(name, spec.task, size, 0, None, "none", {})
    if spec.arch not in RUNNERS:
        raise LrpError(f"model {name}: lrp cost does not know how to run architecture {spec.arch!r}")
    runner, meta_ok = RUNNERS[spec.arch]
    device = "meta" if meta_ok else "cpu"
    net = build_random(spec, device)
    w, h = size
    # A temporal model takes its window of frames stacked on channels (spec.frames RGB groups).
    x = torch.rand(1, 3 * spec.frames, h, w, device=device) * (255.0 if spec.task != "superres" else 1.0)
    try:
        macs, by_op = count_macs(lambda: runner(net, x, spec))
    except RuntimeError as e:
        raise LrpError(f"model {name}: cannot run at input {w}x{h}: {str(e).splitlines()[0]}") from None
    return Cost(name, spec.task, size, count_params(net), macs, device, by_op)


# --------------------------------------------------------------------------------------------
# Output


def _record(c: Cost) -> dict:
    return {
        "model": c.model, "task": c.task, "input_size": f"{c.size[0]}x{c.size[1]}", "params": c.params,
        "params_M": c.params / 1e6, "MACs": c.macs, "GMACs": None if c.macs is None else c.macs / 1e9,
        "GMACs_2^30": None if c.macs is None else c.macs / GIB, "counted_on": c.device,
    }


def build_tables(costs: list[Cost]):
    from lrp.tables import Table

    t = Table("model cost (random weights, batch of one)", ["model", "task", "input WxH", "params (M)", "GMACs (10^9)", "GMACs (2^30, HRNet's tables)"], text_columns=3)
    for c in costs:
        r = _record(c)
        t.rows.append([c.model, c.task, r["input_size"], f"{r['params_M']:.1f}",
                       None if c.macs is None else f"{r['GMACs']:.2f}", None if c.macs is None else f"{r['GMACs_2^30']:.2f}"])
    return [t]


def command(
    model: Annotated[Optional[str], typer.Argument(help="Model name from the registry (see `lrp weights list`).", show_default=False)] = None,
    input_size: Annotated[
        Optional[str],
        typer.Option("--input-size", help="Input WxH (default: the model's own input; SR 320x180, detectors 1344x800).", show_default=False),
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model in the registry, each at its default input size.")] = False,
    fmt: Format = "table",
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """Parameters and multiply-adds (MACs, what pose and SR papers call FLOPs) of registry models.

    Counted with random weights from one forward pass at the input size (convolutions and matrix
    products; element-wise work and FFTs are not counted). GMACs are shown per 10^9 and per 2^30,
    the unit of HRNet's tables (HRNet-W32 256x192: 28.5M parameters, 7.1 "GFLOPs" = 7.6e9 MACs).

        lrp cost hrnet-w32-256x192
        lrp cost realesrgan-x4plus --input-size 160x120
        lrp cost --all --format markdown
    """
    import sys

    from lrp.models import REGISTRY
    from lrp.tables import check_format, emit

    check_format(fmt)
    if all_models == (model is not None):
        raise UsageError("give a MODEL or --all (one of them)")
    if all_models and input_size is not None:
        raise UsageError("--input-size applies to one MODEL; --all uses each model's default size")
    size = parse_size(input_size) if input_size is not None else None
    names = list(REGISTRY) if all_models else [model]
    costs = []
    for name in names:
        if not quiet and all_models:
            print(f"lrp cost: counting {name}", file=sys.stderr)
        costs.append(model_cost(name, size))
    records = [_record(c) for c in costs]
    emit(build_tables(costs), fmt, output, csv_columns=list(records[0]), records=records, json_data=records)
