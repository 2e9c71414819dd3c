"""Helpers for the parity records in ../shared/reference (see its README)."""
from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path
from typing import Callable

import pytest
import torch

REFERENCE_DIR = Path(os.environ.get("HIIF_REFERENCE_DIR",
                                    Path(__file__).resolve().parents[2] / "shared" / "reference"))
RECORDS = [f"{m}-{e}" for m in ("liif", "lte", "hiif") for e in ("edsr-baseline", "rdn", "swinir")]


def require_reference() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"parity records not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


def formula_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The deterministic weights the records were made with (reference README, verbatim rule)."""
    out = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point() or key.endswith(("relative_position_index", "attn_mask")):
            out[key] = value.clone()
            continue
        shape = tuple(value.shape)
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        u = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
        if len(shape) >= 2:
            t = u * math.sqrt(3 / math.prod(shape[1:]))
        elif key.endswith("weight"):
            t = 1 + 0.1 * u
        else:
            t = 0.1 * u
        out[key] = t.float()
    return out


def load_record(name: str) -> dict:
    record = torch.load(require_reference() / f"{name}.pt", weights_only=True)
    record["spec_dict"] = json.loads(record["spec"])
    return record


#: The records reproduce to this max abs error (float32) on a CPU of the reference machine's kind.
PARITY_ATOL = 1e-5


def assert_reproduces(run: Callable[[], torch.Tensor], expected: torch.Tensor) -> None:
    """``run()`` (a model call under no_grad) gives the record's output: max abs error ≤ 1e-5.

    That bound holds where the CPU runs the kernels the records were made with (the reference
    machine's kind, an AVX-512 EPYC, at its thread count). Other kernels sum in another order, and
    float32 rounding alone then moves the outputs by up to ~1e-3 (LTE's sines of large phases
    amplify it): oneDNN and MKL pick them by instruction set (AVX2), by CPU (an AVX-512 Xeon
    without BF16: up to 3.1e-5, benchmarks/RESULTS.md section 22) and by thread count (the same
    Xeon: lte-rdn 2.2e-6 with two threads, 3.1e-5 with the one thread a test worker has). There
    the bound is that rounding noise, measured on the spot: twice the gap between two kernel orders
    of this machine (oneDNN on and off). Every record's error measured 0.8–1.25× that gap on an
    AVX2 EPYC and 0.01–0.9× on that Xeon; a real mistake (a wrong cell, bit or neighbour) is
    systematic and orders of magnitude larger."""
    out = run()
    assert out.shape == expected.shape
    error = (out - expected).abs().max().item()
    bound = PARITY_ATOL
    if error > bound:
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            other_order = run()
        finally:
            torch.backends.mkldnn.enabled = enabled
        bound = max(PARITY_ATOL, 2 * (out - other_order).abs().max().item())
    assert error <= bound, f"max abs error {error:.3g} > {bound:.3g}"
