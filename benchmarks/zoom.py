"""Zoom animations (hiif.zoom): seconds per frame by model, and what the sparser statistics of
HIIF's zoom frames buy and cost against the statistics ``upscale`` uses.

For each model: one zoom from ×1 to ``--to`` into the middle of an example, ``--frames`` frames of
``--size`` px, timed (models loaded beforehand); for HIIF also with ``upscale``'s statistics
budget, and the largest difference between the two zooms' frames (grey levels) and their PSNR.

    python benchmarks/zoom.py [--image examples/coffee.png] [--to 8] [--frames 12] [--size 128]
                              [--models liif-edsr lte-edsr hiif-edsr]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _common import ROOT, machine_line

import hiif.animation as animation
from hiif.engine import STATS_MAX_QUERIES
from hiif.weights import load_model


def timed_zoom(plan, label: str, model) -> tuple[float, animation.Zoom]:
    start = time.perf_counter()
    result = animation.render_zoom(plan, [(label, model)])
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "examples" / "coffee.png"))
    parser.add_argument("--to", type=float, default=8.0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["liif-edsr", "lte-edsr", "hiif-edsr"])
    args = parser.parse_args()
    plan = animation.plan_zoom(args.image, args.to, None, args.size, args.frames)
    h, w = plan.image.size
    print(f"# zoom of {w}×{h} ×{plan.scales[0]:.2f}→×{args.to:g}, {args.frames} frames of {args.size}², {machine_line()}\n")
    print("| model | statistics | s/frame | max diff vs upscale's (grey levels) | PSNR vs upscale's (dB) |")
    print("|---|---|---:|---:|---:|")
    for name in args.models:
        model = load_model(name)
        seconds, sparse = timed_zoom(plan, name, model)
        if model.method != "hiif":
            print(f"| {name} | none | {seconds / args.frames:.2f} | | |")
            continue
        budget = animation.ZOOM_STATS_QUERIES
        animation.ZOOM_STATS_QUERIES = STATS_MAX_QUERIES  # the budget `upscale` uses
        try:
            exact_seconds, exact = timed_zoom(plan, name, model)
        finally:
            animation.ZOOM_STATS_QUERIES = budget
        a = np.stack(sparse.crops[name]).astype(np.float64)
        b = np.stack(exact.crops[name]).astype(np.float64)
        mse = float(np.mean((a - b) ** 2))
        psnr = "inf" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f}"
        print(f"| {name} | zoom's ({budget:,} positions) | {seconds / args.frames:.2f} | "
              f"{np.abs(a - b).max():.0f} | {psnr} |")
        print(f"| {name} | upscale's ({STATS_MAX_QUERIES:,}) | {exact_seconds / args.frames:.2f} | 0 | inf |")


if __name__ == "__main__":
    main()
