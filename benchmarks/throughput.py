"""Decoding throughput of the engine for the nine models, from a 256×256 input.

For each model (formula weights: speed does not depend on the values) and precision (fp32, bf16):
- encoder time for the 256×256 input (runs once per image; float32 in both precisions);
- re-scale latency: ``render`` of ×4 (1024×1024 = 1.05 MP) from cached features (HIIF: including
  its attention-statistics passes for the new scale) -> also the ×4 decode rate in MP/s;
- ×12 (3072×3072 = 9.4 MP): a 0.5 MP band of rows is rendered twice: the first render includes
  HIIF's statistics over the whole output (estimated on a stride-2 sub-grid: 9.4 MP > 4.2 MP),
  the second only the band. Whole-output rate = 9.4 MP / (statistics + 9.4 MP at the band's
  per-pixel rate) — extrapolated from the band, not a whole 9.4 MP render.

    python benchmarks/throughput.py [--models ...] [--precisions fp32 bf16] [--size 256]
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from _common import MODELS, build_model, machine_line, test_image, timed
from hiif import Upscaler


def bench(name: str, size: int, precisions: list[str], device: str | None = None) -> list[dict]:
    model = build_model(name)
    rgb = test_image(size)
    rows = []
    base = Upscaler(model, device=device)
    base.render(base.encode(rgb[:32, :32]), 2)  # warm-up
    t_enc, enc = timed(lambda: base.encode(rgb))
    for prec in precisions:
        up = base if prec == "fp32" else Upscaler(model, device=device, precision=prec)
        if up is not base:
            up.render(up.encode(rgb[:32, :32]), 2)  # warm-up (bf16 kernels)
            enc_p = dataclasses.replace(enc, producer=up._producer)  # same features, no re-encode
        else:
            enc_p = enc
        t4, out = timed(lambda: up.render(enc_p, 4))
        mp4 = out.shape[0] * out.shape[1] / 1e6
        H = W = size * 12
        band = max(1, 524288 // W)
        top = H // 2 - band
        t_first, _ = timed(lambda: up.render(enc_p, 12, region=(top, 0, band, W)))
        t_band, _ = timed(lambda: up.render(enc_p, 12, region=(top + band, 0, band, W)))
        mp12 = H * W / 1e6
        t_stats = max(0.0, t_first - t_band) if getattr(model, "mixes_queries", False) else 0.0
        t12 = t_stats + t_band * mp12 / (band * W / 1e6)
        rows.append(dict(model=name, precision=prec, encode=t_enc, rescale=t4, mp4=mp4 / t4,
                         mp4_enc=mp4 / (t4 + t_enc), stats12=t_stats, mp12=mp12 / t12,
                         t12=t12))
        print(f"| {name} | {prec} | {t_enc:.2f} | {t4:.2f} | {mp4 / t4:.3f} | {mp4 / (t4 + t_enc):.3f} "
              f"| {mp12 / t12:.3f} | {t_stats:.1f} | {t12:.0f} |", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    args = ap.parse_args()
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"# engine throughput from a {args.size}×{args.size} input on {dev}; seconds and output MP/s")
    print(f"# {machine_line()}")
    print("| model | precision | encode s | re-scale ×4 (1.05 MP) s | ×4 MP/s | ×4 MP/s incl. encode "
          "| ×12 MP/s | ×12 stats s | ×12 whole s (extrapolated) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for name in args.models:
            bench(name, args.size, args.precisions, args.device)


if __name__ == "__main__":
    main()
