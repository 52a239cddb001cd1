"""The paper's Table 6 chain split into N shards: what one shard runs, and what joins them.

Table 6: people downscaled to 1/4 (MATLAB bicubic), super-resolved x4, keypoints on GT boxes,
evaluated with size groups from the LR frame. Per shard I of N (lrp --shard I/N on the first
step; the later steps carry the shard along):

    lrp degrade --shard I/N --scale 0.25  -> OUT/shards/lr4.I.json        images: OUT/images/lr4
    lrp pose --boxes gt                   -> OUT/shards/gtpose-lr4.I.json
    per SR model M:
    lrp superres --model M --scale 4      -> OUT/shards/sr4-M.I.json      images: OUT/images/sr4-M
    lrp pose --boxes gt                   -> OUT/shards/gtpose-sr4-M.I.json

Every shard writes its images to the same folders (one --out-dir per stage), so the merged
documents have one image root. Then, once all shards are done:

    lrp merge OUT/shards/lr4.*.json -o OUT/lr4.json   (and each gtpose-* into OUT/gtpose/)
    lrp evaluate --size-from OUT/lr4.json OUT/gtpose/lr4.json OUT/gtpose/sr4-M.json ... > OUT/table6.md

Used by ray_table6.py (one Ray task per shard) and by the Slurm scripts (one array task per
shard, then a dependent merge job); run it by hand as

    python table6.py shard I --shards N --images DIR --ann FILE --out OUT
    python table6.py merge   --shards N --out OUT
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass
class Chain:
    images: str = ""  # COCO image folder
    ann: str = ""  # COCO person keypoints file
    out: str = "out"
    sr_models: list[str] = field(default_factory=lambda: ["bicubic"])
    pose_model: str = "movenet-thunder"
    device: str = "auto"
    lrp: list[str] = field(default_factory=lambda: [sys.executable, "-m", "lrp"])

    def stages(self) -> list[str]:
        """The documents with poses, one per table row: the LR row, then one per SR model."""
        return ["lr4"] + [f"sr4-{m}" for m in self.sr_models]


def shard_commands(i: int, n: int, chain: Chain) -> list[list[str]]:
    """The lrp command lines of shard i of n, in order."""
    lrp, out, shards = chain.lrp, chain.out, f"{chain.out}/shards"
    pose = ["pose", "-q", "--model", chain.pose_model, "--boxes", "gt", "--device", chain.device]
    lr = f"{shards}/lr4.{i}.json"
    cmds = [
        lrp + ["degrade", "-q", "--shard", f"{i}/{n}", "--scale", "0.25", "--images", chain.images, chain.ann,
               "--out-dir", f"{out}/images/lr4", "-o", lr],
        lrp + pose + [lr, "-o", f"{shards}/gtpose-lr4.{i}.json"],
    ]
    for m in chain.sr_models:
        sr = f"{shards}/sr4-{m}.{i}.json"
        cmds.append(lrp + ["superres", "-q", "--model", m, "--scale", "4", "--device", chain.device, lr,
                           "--out-dir", f"{out}/images/sr4-{m}", "-o", sr])
        cmds.append(lrp + pose + [sr, "-o", f"{shards}/gtpose-sr4-{m}.{i}.json"])
    return cmds


def merge_commands(n: int, chain: Chain) -> list[list[str]]:
    """Join the shards (the LR documents for --size-from, the posed stages) and evaluate."""
    lrp, out, shards = chain.lrp, chain.out, f"{chain.out}/shards"
    cmds = [lrp + ["merge", "-q", *[f"{shards}/lr4.{i}.json" for i in range(n)], "-o", f"{out}/lr4.json"]]
    for stage in chain.stages():
        cmds.append(lrp + ["merge", "-q", *[f"{shards}/gtpose-{stage}.{i}.json" for i in range(n)], "-o", f"{out}/gtpose/{stage}.json"])
    cmds.append(
        lrp + ["evaluate", "--format", "markdown", "--size-from", f"{out}/lr4.json",
               *[f"{out}/gtpose/{stage}.json" for stage in chain.stages()], "-o", f"{out}/table6.md"]
    )
    return cmds


def run_commands(cmds: list[list[str]]) -> None:
    """Run command lines in order; the first failure stops with its exit status."""
    for argv in cmds:
        print("+ " + shlex.join(argv), file=sys.stderr, flush=True)
        subprocess.run(argv, check=True)


def prepare(chain: Chain) -> None:
    from pathlib import Path

    for sub in ("shards", "gtpose", "images"):
        (Path(chain.out) / sub).mkdir(parents=True, exist_ok=True)


def chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=int, required=True, help="number of shards N")
    parser.add_argument("--images", default="", help="COCO image folder (val2017)")
    parser.add_argument("--ann", default="", help="COCO person keypoints file")
    parser.add_argument("--out", default="out", help="output folder, shared by every shard")
    parser.add_argument("--sr-model", action="append", dest="sr_models", help="SR model (repeat; default bicubic)")
    parser.add_argument("--pose-model", default="movenet-thunder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--lrp", default=None, help="the lrp command (default: this Python's -m lrp)")


def chain_from(args: argparse.Namespace) -> Chain:
    chain = Chain(images=args.images, ann=args.ann, out=args.out, pose_model=args.pose_model, device=args.device)
    if args.sr_models:
        chain.sr_models = args.sr_models
    if args.lrp:
        chain.lrp = shlex.split(args.lrp)
    return chain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The Table 6 chain, one shard at a time, then merged.")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("shard", help="run shard I of N")
    one.add_argument("index", type=int)
    chain_arguments(one)
    chain_arguments(sub.add_parser("merge", help="merge the N shards and evaluate"))
    args = parser.parse_args(argv)
    chain = chain_from(args)
    if args.what == "shard" and not (args.images and args.ann):
        parser.error("shard needs --images and --ann")
    prepare(chain)
    cmds = shard_commands(args.index, args.shards, chain) if args.what == "shard" else merge_commands(args.shards, chain)
    try:
        run_commands(cmds)
    except subprocess.CalledProcessError as e:
        return e.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
