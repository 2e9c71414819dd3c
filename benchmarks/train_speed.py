"""Training speed: seconds per step (and steps/s) of each zoo model, float32 vs bf16 autocast.

    python benchmarks/train_speed.py [--models hiif-edsr,lte-rdn] [--precisions fp32,bf16]
        [--layouts nchw,nhwc] [--freeze none encoder] [--batch B] [--patch P] [--queries Q] [--steps 3] [--device cpu]
        [--glibc-malloc]

Uses random patches, so it needs no training data. Batch, patch and queries default to each model's
CPU recipe (configs/<name>.yaml: e.g. batch 4, 48×48 LR, 2304 queries for RDN), so a row is the
step a training run of it will take; --batch/--patch/--queries override them for every model (a
batch-16 RDN step costs ~4× the recipe's, RESULTS section 22). Prints one row per model, precision
and memory layout (nhwc = config ``channels_last``), with the machine it ran on; "runs" is the
precision that really ran (bf16 falls back to float32 on a CPU without native bf16, as in training).
Set OMP_NUM_THREADS / torch threads from the shell to compare thread counts. Like `python -m hiif
train`, it keeps freed memory in the heap (hiif.train.keep_freed_memory); --glibc-malloc times
glibc's default instead (a separate run: the setting is per process).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hiif.train import Config, Trainer, keep_freed_memory  # noqa: E402
from hiif.weights import ZOO  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}{gpu}"


def measure(name: str, precision: str, batch: int, steps: int, device: str | None, patch: int = 48,
            queries: int = 2304, channels_last: bool = False, freeze: str | None = None) -> tuple[float, str]:
    """Seconds a step, and the precision that ran."""
    raw = {"name": name, "model": ZOO[name], "precision": precision, "seed": 0,
           "channels_last": channels_last, "freeze": freeze,
           "data": {"patch": patch, "scale_min": 1, "scale_max": 4, "queries": queries},
           "optim": {"lr": 1e-4, "batch": batch, "steps": 10**9, "warmup": 0}}
    images = [(np.random.default_rng(i).random((256, 256, 3)) * 255).astype(np.uint8) for i in range(4)]
    trainer = Trainer(Config(name, raw["model"], raw["data"], raw["optim"], raw),
                      run_dir=Path("/tmp/hiif-train-speed") / name, device=device, images=images,
                      progress=False)
    trainer.save_checkpoint = lambda: None  # speed only
    trainer.train(steps=1)  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    trainer.train(steps=steps)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps, trainer.precision


def recipe_shape(name: str, batch: int | None, patch: int | None,
                 queries: int | None) -> tuple[int, int, int]:
    """Batch, LR patch side and queries of ``name``'s CPU recipe (configs/<name>.yaml), each
    replaced where given; the official 16 / 48 / 2304 for a model without a config."""
    config = CONFIGS / f"{name}.yaml"
    data, optim = {}, {}
    if config.is_file():
        loaded = Config.load(config)
        data, optim = loaded.data, loaded.optim
    return (batch or int(optim.get("batch", 16)), patch or int(data.get("patch", 48)),
            queries or int(data.get("queries", 2304)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(ZOO))
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--layouts", default="nchw", help="nchw and/or nhwc (channels-last)")
    p.add_argument("--batch", type=int, default=None, help="default: the model's recipe")
    p.add_argument("--patch", type=int, default=None, help="default: the model's recipe")
    p.add_argument("--queries", type=int, default=None, help="default: the model's recipe")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--freeze", nargs="*", default=["none"], choices=["none", "encoder"],
                   help="also time steps with the encoder frozen (config `freeze: encoder`)")
    p.add_argument("--device", default=None)
    p.add_argument("--glibc-malloc", action="store_true",
                   help="leave glibc's malloc as it is (training keeps freed memory: section 22)")
    args = p.parse_args()
    kept = not args.glibc_malloc and keep_freed_memory()
    print(f"# {machine()}; freed memory {'kept' if kept else 'returned (glibc default)'}")
    print(f"{'model':<12} {'batch':>5} {'patch':>5} {'queries':>7} {'precision':<9} {'runs':<5} {'layout':<6} "
          f"{'frozen':<8} {'s/step':>8} {'steps/s':>8}")
    for name in args.models.split(","):
        batch, patch, queries = recipe_shape(name, args.batch, args.patch, args.queries)
        for precision in args.precisions.split(","):
            for layout in args.layouts.split(","):
                for freeze in args.freeze:
                    sec, ran = measure(name, precision, batch, args.steps, args.device, patch,
                                       queries, layout == "nhwc", None if freeze == "none" else freeze)
                    print(f"{name:<12} {batch:>5} {patch:>5} {queries:>7} {precision:<9} {ran:<5} {layout:<6} "
                          f"{freeze:<8} {sec:8.2f} {1 / sec:8.3f}",
                          flush=True)


if __name__ == "__main__":
    main()
