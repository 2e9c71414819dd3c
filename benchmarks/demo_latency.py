"""What a visitor of the demo waits for: one comparison (HIIF, bicubic, LIIF, LTE) of a region of
the device's preview size, first with a new image (encoders run), then after moving the scale
slider by 5 % (down from ×30; features cached, decoders only; per-method seconds of that second
comparison).

    python benchmarks/demo_latency.py [--device cuda] [--input 256] [--scales 4,12,30]
        [--backbones EDSR-baseline,RDN,SwinIR]

Uses `hiif.demo.ModelSet` as `app.py` does (no Gradio needed). Models without trained weights run
with the formula weights of the parity records (speed does not depend on the values); the table
says which. The input is `examples/astronaut.png` resized to ``--input`` px.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from _common import ROOT, build_model, has_trained, machine_line
from hiif.demo import BACKBONES, ModelSet, device_limits, plan_job
from hiif.engine import MAX_SCALE
from hiif.imageio import InputImage


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--input", type=int, default=256, help="side of the input image (px)")
    ap.add_argument("--scales", default="4,12,30")
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    args = ap.parse_args()
    backbones = args.backbones.split(",")
    names = [f"{m}-{BACKBONES[b]}" for b in backbones for m in ("hiif", "liif", "lte")]
    trained = {n: has_trained(n) for n in names}
    models = ModelSet(args.device, names=names,
                      loader=lambda n, dev: build_model(n, "trained" if trained[n] else "formula", str(dev)))
    limits = device_limits(models.device)
    rgb = np.asarray(Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
                     .resize((args.input, args.input), Image.BICUBIC))
    scales = [float(s) for s in args.scales.split(",")]
    print(machine_line())
    print(f"device {models.device_text()}; input {args.input}×{args.input}; preview region up to "
          f"{limits.preview_side}×{limits.preview_side} px; weights: "
          + ", ".join(f"{n} {'trained' if t else 'formula'}" for n, t in trained.items()))
    print()
    print("| backbone | scale | region | new image s (encode + 4 renders) | scale ×1.05 s (cached) "
          "| HIIF | bicubic | LIIF | LTE |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for backbone in backbones:
        for i, scale in enumerate(scales):
            fresh = rgb.copy()
            fresh[0, 0, 0] ^= i + 1  # other content: the feature cache (keyed by content) misses
            image = InputImage(fresh, None)
            job = plan_job(image, backbone, scale, limits=limits)
            timings = []
            # a new image at this scale, then the slider moved by 5 % (features cached; down
            # from the largest scale)
            moved = scale * 1.05 if scale * 1.05 <= MAX_SCALE else scale / 1.05
            for job in (job, plan_job(image, backbone, moved, limits=limits)):
                synchronize(models.device)
                t0 = time.perf_counter()
                comparison = models.compare(job)
                synchronize(models.device)
                timings.append(time.perf_counter() - t0)
            _, _, rh, rw = job.region
            per = [f"{comparison.results[m].seconds:.2f}" if m in comparison.results else "—"
                   for m in ("hiif", "bicubic", "liif", "lte")]
            print(f"| {backbone} | ×{scale:g} | {rw}×{rh} | {timings[0]:.2f} | {timings[1]:.2f} | "
                  + " | ".join(per) + " |", flush=True)


if __name__ == "__main__":
    main()
