"""Shared helpers for the benchmark scripts: models, inputs, timing, machine description."""
from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))
import hiif  # noqa: E402
from reference import formula_state_dict  # noqa: E402,F401  (the parity records' weight formula)
from hiif.weights import ZOO, zoo_path  # noqa: E402

SHARED = Path(os.environ.get("HIIF_SHARED_DIR", ROOT.parent / "shared"))
MODELS = [f"{m}-{e}" for e in ("edsr", "rdn", "swinir") for m in ("liif", "lte", "hiif")]


def build_model(name: str, weights: str = "formula", device: str = "cpu") -> torch.nn.Module:
    """``weights``: "formula" (deterministic), or "trained" (weights/<name>.safetensors, which
    must exist)."""
    if weights == "trained":
        return hiif.load_model(name, device)
    model = hiif.create_model(ZOO[name])
    model.load_state_dict(formula_state_dict(model))
    model.spec = ZOO[name]
    return model.to(device).eval()


def has_trained(name: str) -> bool:
    return zoo_path(name).is_file()


def test_image(size: int) -> np.ndarray:
    """A natural ``size``×``size`` RGB crop (Set5 butterfly/baby, PIL bicubic-resized when
    smaller), or a smooth synthetic picture when the benchmark images are not there."""
    from PIL import Image
    for name in ("baby.png", "butterfly.png"):
        path = SHARED / "benchmarks" / "Set5" / name
        if path.is_file():
            img = Image.open(path).convert("RGB")
            side = min(img.size)
            img = img.crop((0, 0, side, side))
            if side != size:
                img = img.resize((size, size), Image.BICUBIC)
            return np.asarray(img)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1)
    return ((rgb * 0.5 + 0.5) * 255).astype(np.uint8)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of ``fn()`` (CUDA work included: kernels run asynchronously)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - t, result


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine() -> dict[str, str]:
    info = {"cpu": platform.processor() or "?", "cores": str(os.cpu_count()),
            "threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"Model name:\s*(.+)", lscpu)
        if m:
            info["cpu"] = m.group(1).strip()
        flags = re.search(r"Flags:\s*(.+)", lscpu)
        if flags:
            f = flags.group(1).split()
            info["isa"] = ", ".join(x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in f)
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        with open("/proc/loadavg") as fh:
            info["loadavg"] = " ".join(fh.read().split()[:3])
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line() -> str:
    m = machine()
    return (f"{m['cpu']} ({m.get('isa', '')}), {m['cores']} cores, {m['threads']} torch threads, "
            f"torch {m['torch']}, Python {m['python']}, {m['date']}, load average {m.get('loadavg', '?')}"
            + (f", GPU {m['gpu']}" if "gpu" in m else ""))


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def to_input(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (h, w, 3) -> normalised (1, 3, h, w), as the official data pipeline feeds models."""
    return (torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
