"""`lrp cost`: parameters and multiply-adds, against hand counts and the published HRNet figures."""

from __future__ import annotations

import json

import pytest

from lrp import cost
from tests.conftest import run_lrp

torch = pytest.importorskip("torch")
nn = torch.nn


class Small(nn.Module):
    """A net small enough to count by hand (see test_small_net_by_hand)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*9 + 8 = 224 params
        self.bn = nn.BatchNorm2d(8)  # 16 params (scale, shift), 2 buffers of 8 not counted
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)  # 72 params
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)  # 8*4*4 + 4 = 132 params
        self.fc = nn.Linear(4 * 10 * 12, 5)  # 480*5 + 5 = 2405 params

    def forward(self, x):
        x = self.up(self.dw(self.bn(self.conv(x))))
        return self.fc(x.flatten(1))


def test_small_net_by_hand():
    net = Small().eval()
    x = torch.rand(1, 3, 10, 12)
    assert cost.count_params(net) == 224 + 16 + 72 + 132 + 2405
    conv = (10 * 12) * 8 * (3 * 9)  # every output pixel of every output channel: Cin*k*k MACs
    dw = (5 * 6) * 8 * 9  # depthwise: one input channel per output channel
    up = (5 * 6) * 8 * (4 * 4)  # each input pixel of each input channel feeds Cout*k*k outputs
    fc = 480 * 5
    macs, by_op = cost.count_macs(lambda: net(x))
    assert macs == conv + dw + up + fc
    assert by_op["convolution"] == conv + dw + up and by_op["addmm"] == fc
    assert cost.count_macs_hooks(net, lambda: net(x)) == macs


@pytest.mark.parametrize(
    "name, params_m, gflops",
    [
        # HRNet paper (Sun et al. 2019) Table 1, COCO val: #Params and GFLOPs; its GFLOPs are MACs / 2^30.
        ("hrnet-w32-256x192", 28.5, 7.1),
        ("hrnet-w48-256x192", 63.6, 14.6),
        ("hrnet-w32-384x288", 28.5, 16.0),
        ("hrnet-w48-384x288", 63.6, 32.9),
        # Table 3, MPII val: HRNet-W32 at 256x256 with 16 heatmaps.
        ("hrnet-w32-256x256-mpii", 28.5, 9.5),
    ],
)
def test_hrnet_published_figures(name, params_m, gflops):
    c = cost.model_cost(name)
    assert c.device == "meta"
    assert round(c.params / 1e6, 1) == params_m
    assert round(c.macs / 2**30, 1) == gflops
    # The same MACs from module hooks (HRNet's own rule: Conv and Linear modules).
    from lrp.models import get_model

    spec = get_model(name)
    net = cost.build_random(spec, "meta")
    w, h = spec.kwargs["input_size"]
    x = torch.zeros(1, 3, h, w, device="meta")
    assert cost.count_macs_hooks(net, lambda: net(x)) == c.macs


def test_srmd_by_hand():
    c = cost.model_cost("srmd-x4", (32, 24))
    # 12 3x3 convs at LR resolution: 19 -> 128, ten 128 -> 128, 128 -> 3*4*4; biases not MACs.
    per_pixel = 9 * (19 * 128 + 10 * 128 * 128 + 128 * 48)
    assert c.macs == 32 * 24 * per_pixel
    assert c.params == per_pixel + 11 * 128 + 48


def test_macs_scale_with_area():
    full = cost.model_cost("hrnet-w32-256x192")
    quarter = cost.model_cost("hrnet-w32-256x192", (96, 128))
    assert quarter.size == (96, 128) and 4 * quarter.macs == full.macs and quarter.params == full.params


def test_command_json_and_table(runner):
    res = run_lrp(runner, ["cost", "hrnet-w48-256x192", "--format", "json"])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(res.stdout)
    assert rec["input_size"] == "192x256" and rec["params"] == 63595745 and round(rec["GMACs_2^30"], 1) == 14.6
    res = run_lrp(runner, ["cost", "bicubic", "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[1].startswith("bicubic,superres,320x180,0,")
    res = run_lrp(runner, ["cost", "srmdnf-x2", "--input-size", "64x48", "--format", "markdown"])
    assert res.exit_code == 0 and "| srmdnf-x2 | superres | 64x48 |" in res.stdout


def test_bad_inputs(runner):
    res = run_lrp(runner, ["cost"])
    assert res.exit_code == 2 and "MODEL or --all" in res.stderr
    res = run_lrp(runner, ["cost", "nosuch"])
    assert res.exit_code == 2 and "unknown model 'nosuch'" in res.stderr
    res = run_lrp(runner, ["cost", "hrnet-w32-256x192", "--input-size", "256"])
    assert res.exit_code == 2 and "--input-size '256'" in res.stderr
    res = run_lrp(runner, ["cost", "--all", "--input-size", "64x64"])
    assert res.exit_code == 2
    # A size the graph cannot take is a one-line error naming model and size.
    res = run_lrp(runner, ["cost", "movenet-thunder", "--input-size", "100x100"])
    assert res.exit_code == 1 and res.stderr.startswith("lrp cost: error: model movenet-thunder: cannot run at input 100x100")


def test_help_and_no_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, lrp.cost; print('torch' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    from typer.testing import CliRunner

    res = run_lrp(CliRunner(), ["cost", "--help"])
    assert res.exit_code == 0 and "2^30" in res.stdout


@pytest.mark.parametrize("name", ["pck", "crowdpose", "quality", "cost"])
def test_issue13_commands_are_documented(runner, name):
    """The commands of issue 13 (quality, cost, pck, crowdpose): help text for every option, man page."""
    from tests.test_cli import _commands
    from tests.conftest import REPO

    cmd = _commands().commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20
    for param in cmd.params:
        if param.param_type_name == "option" and param.name != "help":
            assert getattr(param, "help", None), f"lrp {name}: option {param.opts} has no help text"
    assert (REPO / "man" / f"lrp-{name}.1").is_file()


def test_every_registry_architecture_can_be_counted():
    """`lrp cost --all` must not stop on a model: every architecture has a runner, and the ones
    outside the HRNet family count at their default input (a net that ran has MACs > 0)."""
    from lrp.models import REGISTRY

    missing = sorted({s.arch for s in REGISTRY.values() if s.arch not in cost.RUNNERS and s.arch != "bicubic"})
    assert missing == []
    for name in ("hrnet-w32-simcc-64x64", "hrnet-w32-srhead-256x192", "movenet-lightning", "posenet", "nanodet", "temporal-pose-5-random"):
        c = cost.model_cost(name)
        assert c.params > 0 and c.macs > 0, name
