"""Peak resident memory added per input pixel by ``Upscaler.encode`` (float32, CPU), per zoo model.

Each measurement runs in a fresh child process: build the model (formula weights: memory does not
depend on weight values), encode a 16×16 warm-up image (one-off library initialisation is not
per-pixel), drop it, then reset the kernel's peak-RSS mark (``/proc/self/clear_refs``; else
``ru_maxrss`` is used) and encode the test image. "added" = peak RSS during ``encode`` minus the RSS
just before it; "kept" = RSS still held after it (the cached features), both with freed heap memory
returned to the OS (``malloc_trim``) first. The slope between two sizes
is the per-pixel cost without the fixed part, i.e. what large inputs pay.

HIIF's fast decoder also builds per-pixel lookup tables (``slots``, 4 × 256 floats a pixel) while
they fit ``hiif.fast.HIIF_TABLE_BYTES`` (1 GiB, i.e. inputs up to 512²); ``--no-tables`` rows
measure HIIF as it encodes larger inputs (without them). ``hiif.engine.ENCODE_BYTES_PER_PIXEL``
is taken from this table (see benchmarks/RESULTS.md).

``--tile N`` measures tiled encodes (``Upscaler(tile=N)``: N×N blocks with context) and adds the
engine's estimate for them (``Upscaler.encode_memory_bytes(frame, tile)``), which must cover "added".

    python benchmarks/encode_memory.py [--models hiif-edsr ...] [--sizes 64 128] [--oracle] [--tile N]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Return freed heap memory to the OS (glibc), so that encode cannot reuse memory freed while
    loading the model unseen, and "kept" counts live memory (hiif.fast.tune_allocator keeps up to
    256 MB of freed memory in the heap)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def child(name: str, size: int, tables: bool, fast: bool, tile: int | None = None) -> None:
    import gc
    import resource

    import torch
    from _common import build_model, test_image
    from hiif import Upscaler

    up = Upscaler(build_model(name), device="cpu", fast=fast, tile=tile)
    if not tables and up._fast is not None and hasattr(up._fast, "table_bytes"):
        up._fast.table_bytes = 0  # as for inputs above HIIF_TABLE_BYTES
    warm = up.encode(test_image(16))
    up.evict(warm.key)
    del warm
    rgb = test_image(size)
    gc.collect()
    _trim_heap()
    before_kb = _status_kb("VmRSS")
    if _reset_peak() and _status_kb("VmHWM") is not None:
        enc = up.encode(rgb)
        peak_kb = _status_kb("VmHWM")
        how = "VmHWM"
    else:  # ru_maxrss may still hold an earlier, higher peak: then "added" is an overestimate
        enc = up.encode(rgb)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "ru_maxrss"
    gc.collect()
    _trim_heap()
    after_kb = _status_kb("VmRSS")
    feature_bytes = sum(t.numel() * t.element_size() for t in enc.features.values()
                        if isinstance(t, torch.Tensor))
    fh, fw = enc.frame
    estimate = up.encode_memory_bytes(enc.frame, up._requested_tile(enc.frame))
    print(json.dumps({"model": name, "size": size, "pixels": fh * fw, "how": how, "estimate": estimate,
                      "added": (peak_kb - before_kb) * 1024, "kept": (after_kb - before_kb) * 1024,
                      "features": feature_bytes, "tables": "slots" in enc.features}))


def measure(name: str, size: int, tables: bool, fast: bool, tile: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--models", name, "--sizes", str(size)]
    cmd += [] if tile is None else ["--tile", str(tile)]
    cmd += [] if tables else ["--no-tables"]
    cmd += ["--oracle"] if not fast else []
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if res.returncode:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=None, help="default: the nine zoo models")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    ap.add_argument("--no-tables", action="store_true", help="HIIF without its lookup tables only")
    ap.add_argument("--oracle", action="store_true", help="Upscaler(fast=False): the models' own encode")
    ap.add_argument("--tile", type=int, default=None, help="encode in tiles of this size (with context)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.models[0], args.sizes[0], not args.no_tables, not args.oracle, args.tile)
    sys.path.insert(0, str(HERE))
    from _common import MODELS, machine_line

    models = args.models or MODELS
    sizes = sorted(args.sizes)
    print(f"# peak RSS added by Upscaler.encode, float32, CPU, {'reference' if args.oracle else 'fast'} "
          f"path{'' if args.tile is None else f', tiles of {args.tile}'}; bytes per input pixel (SwinIR: padded frame)")
    print(f"# {machine_line()}")
    head = " | ".join(f"{s}² added B/px | {s}² kept B/px" for s in sizes)
    slope = f" | slope {sizes[0]}²→{sizes[-1]}² B/px" if len(sizes) > 1 else ""
    tiled = args.tile is not None
    estimate_head = f" | {sizes[-1]}² estimate B/px" if tiled else ""
    print(f"| model | {head}{slope} | features B/px{estimate_head} |")
    print("|---" * (2 + 2 * len(sizes) + (len(sizes) > 1) + tiled) + "|")
    variants = []
    for name in models:
        variants.append((name, True))
        if name.startswith("hiif-") and not args.oracle:
            variants.append((name, False))
    if args.no_tables:
        variants = [(n, False) for n, t in variants if n.startswith("hiif-") and not t] or \
                   [(n, False) for n in models]
    for name, tables in variants:
        label = name if (tables or not name.startswith("hiif-") or args.oracle) else f"{name} (no tables)"
        try:
            rows = [measure(name, s, tables, not args.oracle, args.tile) for s in sizes]
        except RuntimeError as exc:
            print(f"| {label} | failed: {exc} |", flush=True)
            continue
        cells = " | ".join(f"{r['added'] / r['pixels']:,.0f} | {r['kept'] / r['pixels']:,.0f}" for r in rows)
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            cells += f" | **{(b['added'] - a['added']) / (b['pixels'] - a['pixels']):,.0f}**"
        feat = rows[-1]["features"] / rows[-1]["pixels"]
        estimate = f" | {rows[-1]['estimate'] / rows[-1]['pixels']:,.0f}" if tiled else ""
        print(f"| {label} | {cells} | {feat:,.0f}{estimate} |", flush=True)


if __name__ == "__main__":
    main()
