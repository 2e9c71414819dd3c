"""Helpers for the parity records in ../shared/reference (see its README)."""
from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

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
