"""CUDA checks. Skipped without a GPU (CI has none); `scripts/device_checks.sh` runs them on a lent
GPU machine (`pytest -s` prints the measured differences)."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hiif import Upscaler
from hiif.weights import zoo_path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EDSR = [n for n in ("hiif-edsr", "liif-edsr", "lte-edsr") if zoo_path(n).is_file()]
PICTURE = np.asarray(Image.open(Path(__file__).resolve().parents[1] / "examples" / "astronaut.png")
                     .convert("RGB").resize((96, 80), Image.BICUBIC))


def psnr_between(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def upscale(name: str, device: str, precision: str = "fp32") -> np.ndarray:
    up = Upscaler(name, device, precision=precision)
    return up.render(up.encode(PICTURE), (3.3, 2.7))


@pytest.fixture(scope="module")
def cpu_renders():
    return {name: upscale(name, "cpu") for name in EDSR}


@pytest.mark.parametrize("precision,min_psnr", [("fp32", 50.0), ("bf16", 38.0), ("fp16", 42.0)])
@pytest.mark.parametrize("name", EDSR)
def test_cuda_renders_what_the_cpu_renders(cpu_renders, name, precision, min_psnr):
    # fp32 on CUDA runs PyTorch's defaults (TF32 convolutions), hence PSNR rather than 1e-4
    out = upscale(name, "cuda", precision)
    agreement = psnr_between(out, cpu_renders[name])
    diff = np.abs(out.astype(int) - cpu_renders[name].astype(int))
    print(f"\n{name} cuda {precision} vs cpu fp32: PSNR {agreement:.1f} dB, max |diff| {diff.max()} "
          f"(8-bit levels), {np.mean(diff > 1) * 100:.3f} % of values off by more than 1")
    assert out.shape == cpu_renders[name].shape
    assert agreement >= min_psnr


@pytest.mark.parametrize("name", [n for n in EDSR if n.startswith("hiif")])
def test_real_out_of_memory_halves_the_chunk_and_gives_the_same_picture(name):
    """A real CUDA out-of-memory (a per-process memory cap) on a large chunk: the engine retries
    with smaller chunks and the picture equals an unconstrained render."""
    up = Upscaler(name, "cuda", chunk=2 ** 20)
    encoded = up.encode(PICTURE)
    expected = Upscaler(name, "cuda", chunk=8192).render(encoded, 8, raw=True)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_allocated() + 768 * 2 ** 20  # ~35k HIIF queries' activations
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = up.render(encoded, 8, raw=True)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    retries = [str(w.message) for w in caught if "out of memory" in str(w.message).lower()]
    print(f"\n{name}: {len(retries)} retries, chunk now {up.chunk}; " + "; ".join(retries))
    assert retries and up.chunk < 2 ** 20
    np.testing.assert_allclose(out, expected, atol=1e-4)
