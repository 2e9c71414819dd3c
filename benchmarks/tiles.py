"""Tiled encoding against the whole-image encoder: how far the rendered pictures differ, and what the
tiles cost in time, per model and tile context.

For each model: encode a ``--size``² natural crop whole (``Upscaler(tile=0)``) and render ×``--scale``;
then encode it in ``--tile``² tiles with each context of ``--contexts`` (SwinIR: ``SWINIR_TILE_CONTEXT``;
EDSR-baseline and RDN always use their receptive field, so one row) and render the same. Prints the
largest difference (in 8-bit grey levels, on the clamped output), the PSNR of the tiled picture
against the whole one, and the encode times. Trained weights when present (weights/), else the
formula weights of the parity records (their features are less spread out, differences smaller).

    python benchmarks/tiles.py [--models hiif-swinir lte-rdn] [--size 192] [--tile 64] [--contexts 0 16 32 48]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import build_model, has_trained, machine_line, test_image

import hiif.engine as engine
from hiif.engine import Upscaler, tile_geometry


def compare(up_whole: Upscaler, up_tiled: Upscaler, image: np.ndarray, scale: float) -> tuple[float, float, float, float]:
    t0 = time.perf_counter()
    whole_enc = up_whole.encode(image)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    tiled_enc = up_tiled.encode(image)
    t_tiled = time.perf_counter() - t0
    a = np.clip(up_whole.render(whole_enc, scale, raw=True), -1, 1) * 0.5 + 0.5
    b = np.clip(up_tiled.render(tiled_enc, scale, raw=True), -1, 1) * 0.5 + 0.5
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(1 / mse)
    return float(np.abs(a - b).max() * 255), psnr, t_whole, t_tiled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["liif-edsr", "lte-rdn", "hiif-swinir"])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--contexts", nargs="+", type=int, default=[0, 16, 32, 48], help="SwinIR contexts to try")
    args = ap.parse_args()
    image = test_image(args.size)
    print(f"# tiled vs whole encode, {args.size}² input, tiles of {args.tile}, ×{args.scale:g}, float32, CPU, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"# {machine_line()}")
    print("| model | weights | context px | exact by construction | max diff (grey levels) | PSNR tiled vs whole dB "
          "| whole encode s | tiled encode s |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    default_context = engine.SWINIR_TILE_CONTEXT
    for name in args.models:
        weights = "trained" if has_trained(name) else "formula"
        model = build_model(name, weights)
        exact = tile_geometry(model.encoder)[2]
        contexts = [None] if exact else args.contexts
        for context in contexts:
            engine.SWINIR_TILE_CONTEXT = default_context if context is None else context
            try:
                shown = tile_geometry(model.encoder)[0]
                diff, psnr, t_whole, t_tiled = compare(Upscaler(model, tile=0), Upscaler(model, tile=args.tile),
                                                       image, args.scale)
            finally:
                engine.SWINIR_TILE_CONTEXT = default_context
            print(f"| {name} | {weights} | {shown} | {'yes' if exact else 'no'} | {diff:.4f} | {psnr:.1f} | "
                  f"{t_whole:.1f} | {t_tiled:.1f} |", flush=True)


if __name__ == "__main__":
    main()
