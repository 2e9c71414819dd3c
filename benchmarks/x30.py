"""×30 from a 256×256 input (7680×7680 = 59 MP) streamed to a PNG: peak memory and time.

Each model runs in a fresh child process; its peak resident memory (``ru_maxrss``, the whole
process: Python, torch, weights, encoder activations, decoder tables, bands) is reported, and the
CUDA peak allocation when on a GPU. ``--fraction f`` renders only the first ``f`` of the output's
bands (every band costs the same; HIIF's statistics for the whole output are computed before
the first band) and extrapolates the whole-output time from them — marked "extrapolated".

    python benchmarks/x30.py [--models hiif-edsr ...] [--fraction 1] [--precision fp32]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(name: str, size: int, scale: float, fraction: float, precision: str, device: str) -> None:
    import torch
    from _common import build_model, peak_rss_mb, test_image
    from hiif import Upscaler
    from hiif.engine import PNG_BAND_PIXELS, output_size

    rss_start = peak_rss_mb()
    model = build_model(name, device=device)
    up = Upscaler(model, device=device, precision=precision)
    rgb = test_image(size)
    t0 = time.perf_counter()
    enc = up.encode(rgb)
    t_enc = time.perf_counter() - t0
    rss_encoded = peak_rss_mb()
    H, W = output_size(enc.lr_size, scale)
    band = max(1, PNG_BAND_PIXELS // W)
    n_bands = math.ceil(H / band)
    k = max(2, min(n_bands, math.ceil(n_bands * fraction)))
    rows = min(H, k * band)
    ticks = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.png")
        t0 = time.perf_counter()
        up.render_to_png(enc, scale, path, region=(0, 0, rows, W),
                         progress=lambda done, total: ticks.append(time.perf_counter() - t0))
        t_dec = time.perf_counter() - t0
        png_mb = os.path.getsize(path) / 1e6
    if k < n_bands:
        per_band = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
        t_whole = ticks[0] + per_band * (n_bands - 1)
    else:
        t_whole = t_dec
    out = {"model": name, "precision": precision, "out": f"{W}×{H}", "mp": H * W / 1e6,
           "bands": f"{k}/{n_bands}", "encode_s": t_enc, "first_band_s": ticks[0], "decode_s": t_whole,
           "extrapolated": k < n_bands, "png_mb": png_mb * (n_bands / k),
           "rss_start_mb": rss_start, "rss_encoded_mb": rss_encoded, "peak_rss_mb": peak_rss_mb()}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["hiif-edsr"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scale", type=float, default=30)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.models[0], args.size, args.scale, args.fraction, args.precision, args.device)
    sys.path.insert(0, str(HERE))
    from _common import machine_line
    print(f"# ×{args.scale:g} from a {args.size}×{args.size} input, streamed to PNG "
          f"(hiif.Upscaler.render_to_png), {args.precision}, {args.device}")
    print(f"# {machine_line()}")
    print("| model | precision | output | bands rendered | encode s | HIIF stats + first band s "
          "| whole decode s | MP/s | PNG MB | peak RSS MB | RSS after encode MB |"
          + (" CUDA peak MB |" if args.device.startswith("cuda") else ""))
    print("|---" * (11 + args.device.startswith("cuda")) + "|")
    for name in args.models:
        cmd = [sys.executable, __file__, "--child", "--models", name, "--size", str(args.size),
               "--scale", str(args.scale), "--fraction", str(args.fraction),
               "--precision", args.precision, "--device", args.device]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
        if res.returncode:
            print(f"| {name} | failed: {res.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        mark = " (extrapolated)" if r["extrapolated"] else ""
        print(f"| {name} | {r['precision']} | {r['out']} ({r['mp']:.0f} MP) | {r['bands']} | {r['encode_s']:.1f} "
              f"| {r['first_band_s']:.1f} | {r['decode_s']:.1f}{mark} | {r['mp'] / r['decode_s']:.3f} "
              f"| {r['png_mb']:.0f}{'~' if r['extrapolated'] else ''} | {r['peak_rss_mb']:.0f} "
              f"| {r['rss_encoded_mb']:.0f} |"
              + (f" {r['cuda_peak_mb']:.0f} |" if "cuda_peak_mb" in r else ""), flush=True)


if __name__ == "__main__":
    main()
