"""The paper's Table 6 over N shards on Ray: one task per shard, then merge and evaluate.

    pip install "lrp[cluster]"        # ray
    python ray_table6.py --shards 8 --num-gpus 1 --images val2017 --ann person_keypoints_val2017.json \
        --out /shared/table6 --sr-model realsr-df2k-x4 --pose-model movenet-thunder

Each task runs the lrp commands of its shard (table6.shard_commands) with `num_gpus` GPUs
reserved (Ray sets CUDA_VISIBLE_DEVICES for it, so `--device auto` finds them; 0 runs on CPUs).
--out must be a folder every worker sees (a shared file system): the shards write their images
into the same stage folders there, which is what `lrp merge` needs. The driver merges and
evaluates once every task has finished; a failing shard fails the run (ray.get raises its error)
and nothing is merged.

lrp schedules nothing itself: Ray places the tasks. `--address` joins a running cluster
(default: start a local Ray, or use the one this process already started with ray.init).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import table6  # noqa: E402  (the chain, shared with the Slurm scripts)


def run_shard(cmds: list[list[str]]) -> int:
    """The body of one Ray task: the shard's lrp commands, in order."""
    table6.run_commands(cmds)
    return len(cmds)


def run(chain: table6.Chain, shards: int, num_gpus: float = 0, address: str | None = None) -> Path:
    """Run every shard as a Ray task, wait for all, then merge and evaluate; returns table6.md."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address)
    table6.prepare(chain)
    task = ray.remote(run_shard).options(num_gpus=num_gpus, num_cpus=1, max_retries=0)
    ray.get([task.remote(table6.shard_commands(i, shards, chain)) for i in range(shards)])
    table6.run_commands(table6.merge_commands(shards, chain))
    return Path(chain.out) / "table6.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    table6.chain_arguments(parser)
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per shard task (default 0: CPU only)")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: a local one)")
    args = parser.parse_args(argv)
    if not (args.images and args.ann):
        parser.error("--images and --ann are required")
    table = run(table6.chain_from(args), args.shards, args.num_gpus, args.address)
    print(table.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
