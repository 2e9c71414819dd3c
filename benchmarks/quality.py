"""Output quality of the speed options: bf16 autocast, and HIIF's estimated attention statistics.

1. ``--bf16``: PSNR on Set5 (official benchmark protocol, hiif.evaluate) of every model with trained
   weights in weights/: fast path fp32, fast path bf16, and the oracle (fast=False, fp32).
2. ``--stats``: HIIF's statistics estimate (sub-grid every k-th row/column, used when the output
   exceeds ``stats_max_queries``), against exact whole-grid statistics:
   a) Set5 with ground truth, ×4 and ×8: the estimate forced with strides 2, 3, 4
      (``stats_max_queries = ceil(N / k²)``): PSNR vs GT (mean) and max |difference| to exact;
   b) the real case: 256×256 input ×12 (9.4 MP > 4.2 MP, so the engine estimates with stride 2):
      a central 512×512 region rendered with exact and with estimated statistics.
   Uses trained hiif-edsr weights when present (formula weights otherwise: their attention is far
   more sensitive than a trained model's, see RESULTS.md).

    python benchmarks/quality.py [--bf16] [--stats] [--data ../shared/benchmarks/Set5]
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from _common import SHARED, build_model, has_trained, machine_line, test_image
from hiif import Upscaler
from hiif.evaluate import evaluate, list_hr_images, make_pair, predict
from hiif.imageio import load_image
from hiif.metrics import benchmark_psnr, psnr

ZOO_ORDER = [f"{m}-{e}" for e in ("edsr", "rdn", "swinir") for m in ("hiif", "liif", "lte")]


def bf16_table(data: str, scales: list[float]) -> None:
    names = [n for n in ZOO_ORDER if has_trained(n)]
    if not names:
        print("no trained weights in weights/: bf16 PSNR not measured")
        return
    print(f"\n## bf16 autocast: PSNR (dB) on {data}, benchmark protocol, trained weights")
    print("| model | variant | " + " | ".join(f"×{s:g}" for s in scales) + " | seconds |")
    print("|---|---|" + "---:|" * (len(scales) + 1))
    for name in names:
        model = build_model(name, weights="trained")
        ref = None
        for label, up in (("oracle (fast=False) fp32", Upscaler(model, fast=False, cache_size=1)),
                          ("engine fp32", Upscaler(model, cache_size=1)),
                          ("engine bf16", Upscaler(model, precision="bf16", cache_size=1))):
            r = evaluate([up], data, scales, progress=False)
            row = r["psnr"][up.name]
            vals = [row[f"{s:g}"] for s in scales]
            delta = "" if ref is None else " (" + ", ".join(f"{v - b:+.3f}" for v, b in zip(vals, ref)) + ")"
            ref = ref or vals
            print(f"| {name} | {label} | " + " | ".join(f"{v:.3f}" for v in vals)
                  + f" | {r['seconds'][up.name]:.0f} |" + (f" Δ vs oracle{delta}" if delta else ""), flush=True)


def stats_set5(model, data: str, scales: list[float], strides: list[int]) -> None:
    images = [load_image(p).rgb for p in list_hr_images(data)]
    print(f"\n## HIIF statistics estimate on {data} (ground truth), stride k = every k-th output row/column")
    print("| scale | statistics | mean PSNR (dB) | Δ PSNR vs exact | max abs diff vs exact (0–1 range) |")
    print("|---|---|---:|---:|---:|")
    for scale in scales:
        pairs = [make_pair(hr, scale) for hr in images]
        exact_preds, exact_psnr = [], []
        up = Upscaler(model, stats_max_queries=10 ** 9, cache_size=1)
        for lr, crop in pairs:
            p = predict(up, lr, crop.shape[:2])
            exact_preds.append(p)
            exact_psnr.append(benchmark_psnr(p, crop, scale))
        base = float(np.mean(exact_psnr))
        print(f"| ×{scale:g} | exact | {base:.3f} | | |")
        for k in strides:
            vals, worst, used = [], 0.0, set()
            for (lr, crop), ref in zip(pairs, exact_preds):
                n = crop.shape[0] * crop.shape[1]
                up = Upscaler(model, stats_max_queries=math.ceil(n / k ** 2), cache_size=1)
                p = predict(up, lr, crop.shape[:2])
                used.add(up.stats_stride(up.encode(lr), (crop.shape[0] / lr.shape[0], crop.shape[1] / lr.shape[1])))
                vals.append(benchmark_psnr(p, crop, scale))
                worst = max(worst, float(np.abs(p - ref).max()))
            label = f"budget for stride {k} → stride {'/'.join(map(str, sorted(used)))}"
            print(f"| ×{scale:g} | {label} | {np.mean(vals):.3f} | {np.mean(vals) - base:+.3f} | {worst:.4f} |",
                  flush=True)


def stats_large(model, size: int = 256, scale: float = 12, region: int = 512) -> None:
    rgb = test_image(size)
    H = W = size * scale
    top = int(H // 2 - region // 2)
    box = (top, top, region, region)
    exact = Upscaler(model, stats_max_queries=10 ** 9, cache_size=1)
    est = Upscaler(model, cache_size=1)  # default: stats_max_queries = 4.2 MP
    a = exact.render(exact.encode(rgb), scale, region=box, raw=True)
    b = est.render(est.encode(rgb), scale, region=box, raw=True)
    a01, b01 = np.clip(a * 0.5 + 0.5, 0, 1), np.clip(b * 0.5 + 0.5, 0, 1)
    stride = est.stats_stride(est.encode(rgb), scale)
    print(f"\n## HIIF statistics estimate, real case: {size}×{size} ×{scale:g} = {H * W / 1e6:.1f} MP "
          f"(stride {stride}), central {region}×{region} region")
    print(f"max abs diff {np.abs(a01 - b01).max():.5f} (0–1 range), mean abs diff "
          f"{np.abs(a01 - b01).mean():.6f}, PSNR(estimate vs exact) {psnr(b01, a01):.1f} dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--data", default=str(SHARED / "benchmarks" / "Set5"))
    ap.add_argument("--scales", default="2,3,4")
    args = ap.parse_args()
    print(f"# {machine_line()}")
    scales = [float(s) for s in args.scales.split(",")]
    if args.bf16:
        bf16_table(args.data, scales)
    if args.stats:
        weights = "trained" if has_trained("hiif-edsr") else "formula"
        print(f"\nHIIF-EDSR weights: {weights}")
        model = build_model("hiif-edsr", weights=weights)
        stats_set5(model, args.data, [4, 8], [2, 3, 4])
        stats_large(model)


if __name__ == "__main__":
    main()
