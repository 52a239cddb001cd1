"""Speed and memory of `lrp evaluate`, `lrp bucket`, the bootstrap and document I/O.

On a generated COCO-val-sized document (bench/synth_coco.py: 5,000 images, ~10,700 people,
~21,600 boxes, ~9,700 poses; `--images N` for a quick run), in one run, as ratios against
baselines measured in the same run:

- evaluate (bbox + keypoints): plain pycocotools (COCO, loadRes, evaluate, accumulate, summarize on
  copies, as a user runs it) and the bare hotcoco engine (the same steps, no lrp around it),
  against lrp's library path (`evaluate_document`) and whole `lrp evaluate FILE` processes;
- bucket, 24 groups, sizes from a frame: lrp's pycocotools engine (today's code path: the
  size-frame COCOeval hook) against the default engine;
- bootstrap: seconds per replicate at 1/4, 1/2 and all of the images (linear in images means the
  same cost per replicate and image);
- document I/O: json.loads / json.dumps against lrp.jsonio (orjson, NaN check included);
- memory: peak RSS of `lrp evaluate` processes against a process that only reads the document.

    /work/main/.venv/bin/python bench/bench_evaluate.py [--images 5000] [--repeat 3] [--bootstrap 20]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from timer import best_of  # noqa: E402  (bench/timer.py)

from bench.synth_coco import synthetic_document  # noqa: E402

TASKS = (("bbox", "detections"), ("keypoints", "poses"))


def plain_pycocotools(doc):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy({k: doc[k] for k in ("images", "annotations", "categories")})
        gt.createIndex()
        for task, key in TASKS:
            E = COCOeval(gt, gt.loadRes(copy.deepcopy(doc["lrp"][key])), task)
            E.evaluate()
            E.accumulate()
            E.summarize()


def bare_hotcoco(doc):
    import hotcoco

    gt = hotcoco.COCO({k: doc[k] for k in ("images", "annotations", "categories")})
    for task, key in TASKS:
        E = hotcoco.COCOeval(gt, gt.load_res(doc["lrp"][key]), task)
        E.evaluate()
        E.accumulate()
        # (summarize() prints from Rust; the accumulated arrays are the result)


# Peak RSS of this process: VmHWM starts afresh at exec (ru_maxrss would include the parent's
# size at fork, which holds the document).
_PEAK = ("print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0], "
         "file=__import__('sys').stderr)\n")


def child_peak(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `python -c <lrp CLI>` in a fresh process."""
    code = (
        "import sys\n"
        "from lrp.cli import main\n"
        f"sys.argv = ['lrp'] + {args!r}\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"{_PEAK}"
    )
    return _child(code)


def _child(code: str) -> tuple[float, float]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=20)
    a = ap.parse_args()

    from lrp import bucket as bk
    from lrp import jsonio
    from lrp.evaluate import evaluate_document

    doc = synthetic_document(a.images)
    n_people, n_det, n_pose = len(doc["annotations"]), len(doc["lrp"]["detections"]), len(doc["lrp"]["poses"])
    print(f"document: {a.images} images, {n_people} people, {n_det} detections, {n_pose} poses "
          f"(generated, seed 0); best of {a.repeat}; {os.cpu_count()} CPUs")

    # ---- document I/O
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    size_mb = len(text.encode()) / 2**20
    t_dumps = best_of(lambda: json.dumps(doc, separators=(",", ":"), ensure_ascii=False), a.repeat)
    t_ours_dumps = best_of(lambda: jsonio.dumps(doc), a.repeat)
    t_loads = best_of(lambda: json.loads(text), a.repeat)
    t_ours_loads = best_of(lambda: jsonio.loads(text), a.repeat)
    print(f"\nI/O ({size_mb:.1f} MiB of JSON)")
    print(f"  write  json.dumps {t_dumps:.3f} s   lrp.jsonio.dumps {t_ours_dumps:.3f} s   {t_dumps / t_ours_dumps:.1f}x")
    print(f"  read   json.loads {t_loads:.3f} s   lrp.jsonio.loads {t_ours_loads:.3f} s   {t_loads / t_ours_loads:.1f}x")

    # ---- evaluate, in this process
    t_pyc = best_of(lambda: plain_pycocotools(doc), a.repeat)
    t_hot = best_of(lambda: bare_hotcoco(doc), a.repeat)
    t_lrp = best_of(lambda: evaluate_document(doc), a.repeat)
    t_lrp_ref = best_of(lambda: evaluate_document(doc, engine="pycocotools"), 1)
    print("\nevaluate bbox + keypoints (library, document in memory)")
    print(f"  plain pycocotools        {t_pyc:.3f} s")
    print(f"  bare hotcoco             {t_hot:.3f} s")
    print(f"  lrp (engine hotcoco)     {t_lrp:.3f} s   {t_pyc / t_lrp:.1f}x pycocotools (target >= 5), "
          f"{t_lrp / t_hot:.2f}x bare hotcoco (target <= 1.5)")
    print(f"  lrp --engine pycocotools {t_lrp_ref:.3f} s")

    # ---- bucket, 24 groups, sizes from a frame (as `lrp bucket` always evaluates)
    edges = bk.default_edges(1.0)
    t_bk_ref = best_of(lambda: bk.bucket_document(doc, edges, frame_doc=doc, engine="pycocotools"), 1)
    t_bk = best_of(lambda: bk.bucket_document(doc, edges, frame_doc=doc), a.repeat)
    print("\nbucket, 24 groups, size frame (bbox + keypoints)")
    print(f"  lrp --engine pycocotools (today's path) {t_bk_ref:.3f} s")
    print(f"  lrp (engine hotcoco)                    {t_bk:.3f} s   {t_bk_ref / t_bk:.1f}x (target >= 10)")

    # ---- bootstrap: every image evaluated once, then a cost per replicate that grows with images
    import numpy as np

    from lrp import cocoeval as ce

    print(f"\nbootstrap, {a.bootstrap} replicates, bbox + keypoints (engine hotcoco)")
    per = []
    for frac in (4, 2, 1):
        n = max(2, a.images // frac)
        small = doc if frac == 1 else synthetic_document(n)
        t_read = t_rep = 0.0
        for task, _ in TASKS:
            E = ce.run_cocoeval(small, task, keep_per_image=True)
            t = time.perf_counter()
            E.per_image()
            t_read += time.perf_counter() - t
            t = time.perf_counter()
            for _ in ce.bootstrap_evals(E, a.bootstrap, np.random.default_rng(0)):
                pass
            t_rep += (time.perf_counter() - t) / a.bootstrap
        per.append((n, t_rep))
        print(f"  {n:>6} images: per-image results read once {t_read:.2f} s; {t_rep * 1000:.1f} ms per replicate, "
              f"{t_rep / n * 1e6:.1f} us per replicate and image")
    print(f"  per replicate, {per[-1][0]} vs {per[0][0]} images: {per[-1][1] / per[0][1]:.2f}x "
          f"for {per[-1][0] / per[0][0]:.0f}x the images (linear: the same factor or less)")
    t_boot = best_of(lambda: evaluate_document(doc, bootstrap=a.bootstrap), 1)
    print(f"  evaluate_document(bootstrap={a.bootstrap}) on {a.images} images: {t_boot:.2f} s in all")

    # ---- whole processes: time and peak memory
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.json"
        path.write_text(text)
        base_code = "import numpy, hotcoco, pycocotools.cocoeval, lrp.cli, lrp.evaluate, lrp.bucket\n" + _PEAK
        load_code = (base_code.splitlines()[0] + "\nfrom lrp.inputs import load_document\n"
                     f"doc = load_document({str(path)!r})\n" + _PEAK)
        _, base = _child(base_code)
        _, loaded = _child(load_code)
        t_cli, peak = child_peak(["evaluate", "-q", "--format", "json", str(path)])
        t_cli_ref, peak_ref = child_peak(["evaluate", "-q", "--format", "json", "--engine", "pycocotools", str(path)])
        t_cli_bk, peak_bk = child_peak(["bucket", "-q", "--format", "json", "--scale", "1", str(path)])
    doc_mem = max(loaded - base, 1.0)
    print("\nwhole processes (`lrp evaluate FILE`, `lrp bucket --scale 1 FILE`; start-up and reading included)")
    print(f"  imports only: {base:.0f} MiB peak; reading the document: {loaded:.0f} MiB peak "
          f"(the document: {doc_mem:.0f} MiB in memory, {size_mb:.1f} MiB of JSON)")
    for what, t, p in (("lrp evaluate", t_cli, peak), ("lrp evaluate --engine pycocotools", t_cli_ref, peak_ref),
                       ("lrp bucket", t_cli_bk, peak_bk)):
        print(f"  {what:<34} {t:6.2f} s  peak {p:5.0f} MiB: {(p - base) / doc_mem:.2f}x the document in memory "
              "beyond the imports (target <= 2)")
    print(f"  lrp evaluate: {t_cli_ref / t_cli:.1f}x faster than with --engine pycocotools")


if __name__ == "__main__":
    main()
