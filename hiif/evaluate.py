"""Evaluation with the official protocol (shared/reference/README.md):

for each HR image and scale ``s``: ``h_lr = floor(H/s + 1e-9)`` (same for width), HR cropped top-left
to ``round(h_lr·s) × round(w_lr·s)``, LR = PIL bicubic (antialiased) of that crop; the model renders
the crop's grid from the LR; PSNR is taken on the float prediction clamped to [0, 1] (no 8-bit
rounding): Y channel with ``s`` px shaved for benchmark sets, RGB with ``s + 6`` for DIV2K-style sets.
Bicubic is PIL's upsampling of the same LR. The reported value is the mean of per-image PSNRs.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from .imageio import IMAGE_SUFFIXES
from .engine import Upscaler, validate_scale
from .imageio import check_writable, load_image
from .metrics import benchmark_psnr, div2k_psnr

PROTOCOLS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "benchmark": benchmark_psnr, "div2k": div2k_psnr}


def make_pair(hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(LR, cropped HR), both uint8, following the official downsampling wrapper."""
    h_lr = math.floor(hr.shape[0] / scale + 1e-9)
    w_lr = math.floor(hr.shape[1] / scale + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise ValueError(f"image {hr.shape[1]}×{hr.shape[0]} is too small for ×{scale:g}")
    crop = np.ascontiguousarray(hr[:round(h_lr * scale), :round(w_lr * scale)])
    lr = np.asarray(Image.fromarray(crop).resize((w_lr, h_lr), Image.BICUBIC))
    return lr, crop


def list_hr_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: evaluation folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images")
    return paths


def predict(upscaler: Upscaler, lr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Float prediction in [0, 1] of the crop's grid (bicubic: PIL, 8-bit)."""
    scale = (out_hw[0] / lr.shape[0], out_hw[1] / lr.shape[1])
    encoded = upscaler.encode(lr)
    if upscaler.model is None:
        return upscaler.render(encoded, scale).astype(np.float64) / 255
    raw = upscaler.render(encoded, scale, raw=True)
    return np.clip(raw.astype(np.float64) * 0.5 + 0.5, 0, 1)


def evaluate(models: Sequence[str | Upscaler], data_dir: str | Path, scales: Sequence[float],
             protocol: str | None = None, device: str | None = None, precision: str = "fp32",
             progress: bool = True) -> dict[str, Any]:
    """Mean PSNR per model and scale; bicubic is always included. Scales and images are checked
    before any model loads."""
    for s in scales:
        if not isinstance(s, (int, float, np.number)) or isinstance(s, bool):
            raise ValueError(f"evaluation scales are single numbers, got {s!r}")
        validate_scale(s)
    paths = list_hr_images(data_dir)
    protocol = protocol or ("div2k" if "div2k" in str(data_dir).lower() else "benchmark")
    metric = PROTOCOLS[protocol]
    images = [load_image(p).rgb for p in paths]
    models = [m for m in models if m != "bicubic"]
    upscalers = [Upscaler("bicubic", device=device)]
    for m in models:
        upscalers.append(m if isinstance(m, Upscaler) else Upscaler(m, device=device, precision=precision, cache_size=1))
    names = ["bicubic"] + [str(m) if not isinstance(m, Upscaler) else m.name for m in models]
    table: dict[str, dict[str, float]] = {n: {} for n in names}
    seconds: dict[str, float] = {n: 0.0 for n in names}
    from tqdm import tqdm
    bar = tqdm(total=len(scales) * len(images) * len(upscalers), desc=f"evaluate {Path(data_dir).name}",
               disable=not progress, unit="img")
    for scale in scales:
        pairs = [make_pair(hr, scale) for hr in images]
        for name, up in zip(names, upscalers):
            values = []
            for lr, crop in pairs:
                t0 = time.time()
                pred = predict(up, lr, crop.shape[:2])
                seconds[name] += time.time() - t0
                values.append(metric(pred, crop, scale))
                bar.update(1)
            table[name][f"{scale:g}"] = float(np.mean(values))
    bar.close()
    return {"data": str(data_dir), "dataset": Path(data_dir).name, "protocol": protocol,
            "images": len(images), "scales": [float(s) for s in scales], "psnr": table,
            "seconds": seconds, "precision": precision}


def merge_results(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results of one dataset measured in several pieces (scales split across processes) joined
    into one result per dataset, scales in ascending order, in the order datasets first appear."""
    merged: dict[str, dict[str, Any]] = {}
    for r in parts:
        m = merged.setdefault(r["dataset"], {**r, "psnr": {}, "scales": [], "seconds": {}})
        if (m["protocol"], m["images"]) != (r["protocol"], r["images"]):
            raise ValueError(f"{r['dataset']}: pieces measured with different protocols or images")
        m["scales"] = sorted(set(m["scales"]) | set(r["scales"]))
        for name, row in r["psnr"].items():
            m["psnr"].setdefault(name, {}).update(row)
        for name, seconds in r["seconds"].items():
            m["seconds"][name] = m["seconds"].get(name, 0.0) + seconds
    for m in merged.values():
        m["psnr"] = {name: {f"{s:g}": row[f"{s:g}"] for s in m["scales"] if f"{s:g}" in row}
                     for name, row in m["psnr"].items()}
    return list(merged.values())


def gain_over_bicubic(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each model's PSNR minus bicubic's, at the scales both have (empty without bicubic)."""
    bicubic = result["psnr"].get("bicubic")
    if bicubic is None:
        return {}
    return {name: {s: value - bicubic[s] for s, value in row.items() if s in bicubic}
            for name, row in result["psnr"].items() if name != "bicubic"}


def format_table(result: dict[str, Any]) -> str:
    scales = [f"{s:g}" for s in result["scales"]]
    lines = [f"{result['dataset']} ({result['protocol']} protocol, {result['images']} images), PSNR dB", "",
             "| model | " + " | ".join(f"×{s}" for s in scales) + " |",
             "|---|" + "---:|" * len(scales)]
    for name, row in result["psnr"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[s]:.2f}" if s in row else "—" for s in scales) + " |")
    return "\n".join(lines)


def write_results(results: list[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["dataset", "protocol", "model", "scale", "psnr"])
            for r in results:
                for model, row in r["psnr"].items():
                    for scale, value in row.items():
                        writer.writerow([r["dataset"], r["protocol"], model, scale, f"{value:.4f}"])
    else:
        path.write_text(json.dumps(results, indent=2))


def record_results(results: Sequence[dict[str, Any]], path: str | Path) -> list[dict[str, Any]]:
    """Fold newly measured results into the record at ``path`` (``weights/results.json``, what the
    model card is written from, kept in git so that a later session can regenerate the card):
    re-measured values replace the old ones, the other models and scales stay. Returns the record."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else []
    record = merge_results([*old, *results])
    for r in record:
        r["seconds"] = {}  # the record is about quality; pieces measured apart have no common time
    write_results(record, path)
    return record


def card_intro(card: str) -> str:
    """The hand-written part of a model card: the text between its title and its first table."""
    body = card.split("\n", 1)[1] if card.startswith("# ") else card
    return body.split("\n| model |", 1)[0].strip()


def write_card(results: list[dict[str, Any]], path: str | Path, intro: str | None = None) -> None:
    """Write the model card at ``path`` for ``results``, keeping the text the card already has above
    its tables unless ``intro`` is given."""
    path = Path(path)
    if intro is None:
        intro = card_intro(path.read_text()) if path.is_file() else ""
    path.write_text(model_card(results, intro))


def set_scale_axis(ax, scales: Sequence[str | float]) -> list[float]:
    """Log x axis whose ticks are exactly ``scales``, labelled ``×2``, ``×3.5`` …, with no minor
    ticks (the log axis' own minor labels, e.g. at ×20, collide with ×18/×24)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    xs = sorted({float(s) for s in scales})
    ax.set_xscale("log")
    ax.set_xticks(xs, labels=[f"×{x:g}" for x in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("scale")
    return xs


def plot_results(results: list[dict[str, Any]], path: str | Path):
    """Write one PSNR-vs-scale column per result to ``path`` (PNG); returns the (closed) figure.

    Where a result has bicubic, a second row plots each model's gain over it: models within a
    few hundredths of a dB of each other overlap on the PSNR scale (tens of dB) but not there.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_gain = any("bicubic" in r["psnr"] for r in results)
    rows = 2 if with_gain else 1
    fig, axes = plt.subplots(rows, len(results), figsize=(6 * len(results), 4.2 * rows), squeeze=False)
    for column, r in enumerate(results):
        ax = axes[0][column]
        scales: list[str] = []
        colours = {name: f"C{index}" for index, name in enumerate(r["psnr"])}  # both rows alike
        for name, row in r["psnr"].items():
            keys = sorted(row, key=float)
            scales += keys
            ax.plot([float(s) for s in keys], [row[s] for s in keys], marker="o", label=name,
                    color=colours[name], linestyle="--" if name == "bicubic" else "-")
        set_scale_axis(ax, scales)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{r['dataset']} ({r['protocol']})")
        ax.grid(alpha=0.3)
        ax.legend()
        if not with_gain:
            continue
        ax = axes[1][column]
        if "bicubic" not in r["psnr"]:
            ax.set_axis_off()
            continue
        ax.axhline(0.0, color=colours["bicubic"], linestyle="--", label="bicubic")
        for name, gain in gain_over_bicubic(r).items():
            keys = sorted(gain, key=float)
            if keys:
                ax.plot([float(s) for s in keys], [gain[s] for s in keys], marker="o", label=name,
                        color=colours[name])
        set_scale_axis(ax, scales)
        ax.set_ylabel("gain over bicubic (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


#: what ``--out`` and ``--plot`` can write
RESULT_SUFFIXES = (".json", ".csv")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def run_cli(args, scales: Sequence[float]) -> int:
    """``python -m hiif evaluate``; ``scales`` as parsed (and checked) by :mod:`hiif.cli`. Every
    folder and output path is checked before any model loads."""
    folders = [d for d in args.data.split(",") if d.strip()]
    if not folders:
        raise ValueError("--data: no folder given")
    for folder in folders:
        list_hr_images(folder)
    for option, path, suffixes in (("--out", args.out, RESULT_SUFFIXES), ("--plot", args.plot, PLOT_SUFFIXES),
                                   ("--record", getattr(args, "record", None), (".json",)),
                                   ("--card", getattr(args, "card", None), (".md",))):
        if path is None:
            continue
        if Path(path).suffix.lower() not in suffixes:
            raise ValueError(f"{option} {path}: expected a {' or '.join(suffixes)} file")
        check_writable(path)
    results = [evaluate(args.model, d, scales, args.protocol, args.device, progress=not args.quiet)
               for d in folders]
    for r in results:
        print(format_table(r))
        print()
    if args.out:
        write_results(results, args.out)
    if args.plot:
        plot_results(results, args.plot)
    if getattr(args, "record", None):
        results = record_results(results, args.record)
    if getattr(args, "card", None):
        write_card(results, args.card, getattr(args, "card_intro", None))
    return 0


def model_card(results: list[dict[str, Any]], intro: str = "") -> str:
    """``weights/MODELS.md``: provenance of each evaluated weights file and the measured PSNR."""
    from .train import describe_init, describe_schedule
    from .weights import ZOO, zoo_path

    names = [n for n in results[0]["psnr"] if n != "bicubic"]
    lines = ["# Model card: the weights in this folder", ""]
    if intro:
        lines += [intro.strip(), ""]
    lines += ["| model | steps × batch | train time | hardware | data | recipe |", "|---|---:|---:|---|---|---|"]
    for name in names:
        meta = {}
        path = zoo_path(name) if name in ZOO else Path(name)
        if path.is_file():
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        recipe = json.loads(meta["recipe"]) if "recipe" in meta else {}
        optim = recipe.get("optim", {})
        seconds = float(meta.get("train_seconds", 0))
        train_time = f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
        init = describe_init(recipe.get("init"), json.loads(meta.get("donors", "[]")))
        init = f", {init}" if init else ""
        if recipe.get("freeze"):
            init += f", {recipe['freeze']} frozen"
        lines.append(
            f"| {name} | {meta.get('steps', '?')} × {meta.get('batch', '?')} | {train_time} | "
            f"{meta.get('device', '?')} | {meta.get('data', '?')} | {describe_schedule(optim, json.loads(meta.get('earlier_cycles', '[]')))}, "
            f"{recipe.get('precision', '?')}{init} |")
    for r in results:
        lines += ["", format_table(r), "", "Gain over bicubic (dB):", "",
                  "| model | " + " | ".join(f"×{s:g}" for s in r["scales"]) + " |",
                  "|---|" + "---:|" * len(r["scales"])]
        gains = gain_over_bicubic(r)
        for name in names:
            gain = gains.get(name, {})
            lines.append(f"| {name} | " + " | ".join(
                f"{gain[k]:+.2f}" if k in gain else "—" for k in map("{:g}".format, r["scales"])) + " |")
    return "\n".join(lines) + "\n"
