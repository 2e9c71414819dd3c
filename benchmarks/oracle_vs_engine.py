"""Engine (fast path) against the straightforward implementation run the way the official code runs
it: same input, same output, one benchmark run, variants interleaved.

Oracle = ``model.encode`` (``gen_feat``) then, for LIIF/LTE, ``model.query`` over consecutive slices
of 30000 queries (official ``batched_predict`` with ``eval_bsize`` 30000); for HIIF one single
``model(inp, coord, cell)``-style call over the whole (H, W) grid (official ``test.py`` with
``eval_bsize`` None, or ``batched_predict_fast`` with a band of at least H rows); under
``torch.no_grad()`` as the official scripts do.
Engine = ``Upscaler(model).render(up.encode(img), s, raw=True)`` (encoder included).

Each measurement runs in a fresh child process (after a small warm-up call through the same
path), so that process-wide settings do not leak between variants: the engine tunes glibc malloc
(``hiif.fast.tune_allocator``), the official code does not. ``oracle+malloc`` runs the oracle with
that same allocator setting, to show how much of the gain is the allocator alone.

    python benchmarks/oracle_vs_engine.py [--size 128] [--scale 4] [--repeats 3] [--models ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def child(variant: str, name: str, size: int, scale: float, out_path: str) -> None:
    import torch
    from _common import build_model, test_image, to_input
    from hiif import Upscaler
    from hiif.fast import tune_allocator
    from hiif.models.common import make_coord

    model = build_model(name)
    rgb = test_image(size)

    def oracle(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        H, W = round(h * scale), round(w * scale)
        inp = to_input(img)
        with torch.no_grad():
            feats = model.encode(inp)
            if model.method == "hiif":
                coord = make_coord((H, W), flatten=False).unsqueeze(0)
                out = model.query(feats, coord, torch.tensor([[2 / H, 2 / W]]))[0].permute(1, 2, 0)
            else:
                coord = make_coord((H, W)).unsqueeze(0)
                cell = torch.ones_like(coord) * torch.tensor([2 / H, 2 / W])
                out = torch.cat([model.query(feats, coord[:, a:a + 30000], cell[:, a:a + 30000])
                                 for a in range(0, coord.shape[1], 30000)], dim=1)[0].view(H, W, 3)
        return out.numpy()

    if variant.startswith("oracle"):
        if variant == "oracle+malloc":
            tune_allocator()
        run = oracle
    else:
        up = Upscaler(model, precision="bf16" if variant == "engine-bf16" else "fp32")

        def run(img: np.ndarray) -> np.ndarray:
            return up.render(up.encode(img), scale, raw=True)

    run(rgb[:24, :24])  # warm-up: primitive caches, lazy initialisation
    t, c = time.perf_counter(), time.process_time()
    out = run(rgb)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    np.save(out_path, out.astype(np.float32))
    print(json.dumps({"wall": wall, "cpu": cpu}))


def measure(variant: str, name: str, size: int, scale: float, out_path: str) -> dict:
    env = dict(os.environ)
    if variant.startswith("oracle"):
        env["HIIF_TUNE_MALLOC"] = "1" if variant == "oracle+malloc" else "0"
    res = subprocess.run([sys.executable, __file__, "--child", variant, name, str(size), str(scale),
                          out_path], capture_output=True, text=True, env=env, cwd=HERE)
    if res.returncode:
        raise RuntimeError(f"{variant} {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--scale", type=float, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["liif-edsr", "lte-edsr", "hiif-edsr"])
    ap.add_argument("--variants", nargs="+", default=["oracle", "engine", "oracle+malloc", "engine-bf16"])
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "MODEL", "SIZE", "SCALE", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        v, n, s, sc, o = args.child
        return child(v, n, int(s), float(sc), o)

    sys.path.insert(0, str(HERE))
    from _common import machine_line, median
    out_mp = round(args.size * args.scale) ** 2 / 1e6
    print(f"# oracle vs engine: ×{args.scale:g} of a {args.size}×{args.size} input ({out_mp:.2f} MP out),"
          f" encoder included; median wall seconds of {args.repeats} (CPU seconds in brackets);"
          f" max |engine − oracle| in the normalised output space")
    print(f"# {machine_line()}")
    variants = args.variants
    times: dict = {(n, v): [] for n in args.models for v in variants}
    diffs: dict = {(n, v): 0.0 for n in args.models for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in args.models:
                ref = None
                for v in variants:
                    path = os.path.join(tmp, f"{name}-{v}.npy")
                    times[(name, v)].append(measure(v, name, args.size, args.scale, path))
                    out = np.load(path)
                    if v == "oracle":
                        ref = out
                    elif ref is not None:
                        diffs[(name, v)] = max(diffs[(name, v)], float(np.abs(out - ref).max()))
    head = "| model |" + "".join(f" {v} s |" for v in variants)
    head += "".join(f" {v} vs oracle |" for v in variants if v != "oracle")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name in args.models:
        w = {v: median([t["wall"] for t in times[(name, v)]]) for v in variants}
        c = {v: median([t["cpu"] for t in times[(name, v)]]) for v in variants}
        row = f"| {name} |" + "".join(f" {w[v]:.2f} ({c[v]:.1f}) |" for v in variants)
        for v in variants:
            if v != "oracle":
                row += f" {w['oracle'] / w[v]:.2f}×" + (
                    f", diff {diffs[(name, v)]:.1e} |" if v.startswith("engine") else " |")
        print(row, flush=True)


if __name__ == "__main__":
    main()
