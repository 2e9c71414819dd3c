"""Weight files: our fp16 safetensors, official ``.pth`` checkpoints, and the model zoo.

- Our files (``weights/<name>.safetensors``): fp16 tensors; metadata ``spec`` (the official model
  spec as JSON) plus provenance (steps, data, date, …). Never pickled.
- Official checkpoints: ``{'model': {'name', 'args', 'sd'}, ...}`` read with
  ``torch.load(..., weights_only=True)``; a ``module.`` prefix (DataParallel) is accepted.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from safetensors.torch import save as safetensors_bytes

from .engine import resolve_device
from .imageio import atomic_write
from .models import ImplicitSR, create_model

WEIGHTS_DIR = Path(os.environ.get("HIIF_WEIGHTS_DIR", Path(__file__).resolve().parents[1] / "weights"))
FORMAT = "hiif-weights-v1"


def _spec(method: str, encoder: str) -> dict[str, Any]:
    encoder_spec = {"name": encoder, "args": {"no_upsampling": True}}
    if method == "liif":
        return {"name": "liif", "args": {"encoder_spec": encoder_spec, "imnet_spec": {
            "name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}}}
    if method == "lte":
        return {"name": "lte", "args": {"encoder_spec": encoder_spec, "imnet_spec": {
            "name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256]}}, "hidden_dim": 256}}
    return {"name": "hiif", "args": {"encoder_spec": encoder_spec, "hidden_dim": 256, "blocks": 16}}


ENCODER_NAMES = {"edsr": "edsr-baseline", "rdn": "rdn", "swinir": "swinir"}
METHODS = ("hiif", "liif", "lte")
#: zoo name -> official spec, e.g. "hiif-edsr" -> HIIF with an EDSR-baseline encoder
ZOO: dict[str, dict[str, Any]] = {
    f"{m}-{e}": _spec(m, enc) for e, enc in ENCODER_NAMES.items() for m in METHODS
}


class WeightsError(ValueError):
    """A weights source that cannot be used; the message names it and says why."""


def zoo_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def official_checkpoint_in_weights(name: str) -> Path | None:
    """An official checkpoint a user dropped in ``weights/`` as ``<zoo name>.pth``."""
    path = WEIGHTS_DIR / f"{name}.pth"
    return path if path.is_file() else None


def _finish(model: ImplicitSR, spec: dict[str, Any], source: str,
            metadata: Mapping[str, str] | None, device: str | torch.device | None) -> ImplicitSR:
    model.spec = spec
    model.source = source
    model.metadata = dict(metadata or {})
    return model.to(_device(device)).eval()


def _device(device: str | torch.device | None) -> torch.device:
    """The CPU by default (loading never picks an accelerator by itself), else the device named,
    checked by :func:`hiif.engine.resolve_device` (one clear line for a device this machine lacks)."""
    return torch.device("cpu") if device is None else resolve_device(device)


def build_from_state_dict(spec: dict[str, Any], state_dict: Mapping[str, torch.Tensor], source: str) -> ImplicitSR:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) \
            or not isinstance(spec.get("args", {}), dict):
        raise WeightsError(f"{source}: the model spec must be {{'name': str, 'args': dict}}, got "
                           f"{str(spec)[:80]}")
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise WeightsError(f"{source}: the state_dict must map parameter names to tensors")
    try:
        # Built on the meta device: random initialisation is skipped (SwinIR's takes seconds) and
        # every tensor comes from the state_dict below (strict, assign).
        with torch.device("meta"):
            model = create_model(spec)
    except (ValueError, TypeError, KeyError) as exc:
        raise WeightsError(f"{source}: {exc}") from exc
    expected = model.state_dict()
    state = {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in expected and expected[key].is_floating_point():
            value = value.to(torch.float32)
        elif key in expected:
            value = value.to(expected[key].dtype)
        state[key] = value
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{source}: state_dict does not match spec {spec.get('name')!r} "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(f"{source}: {key} has shape {tuple(state[key].shape)}, the spec "
                               f"expects {tuple(value.shape)}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise WeightsError(f"{source}: incompatible weights ({first[-1].strip() if first else exc})") from exc
    return model


def load_safetensors(path: str | Path, device: str | torch.device | None = None) -> ImplicitSR:
    path = Path(path)
    device = _device(device)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    if "spec" not in metadata:
        raise WeightsError(f"{path}: safetensors file has no 'spec' metadata (not a hiif weights file)")
    try:
        spec = json.loads(metadata["spec"])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: corrupt 'spec' metadata ({exc})") from exc
    return _finish(build_from_state_dict(spec, state, str(path)), spec, str(path), metadata, device)


def _looks_like_torch_file(path: Path) -> bool:
    """Whether the file starts like something torch.save writes (a zip archive, or a legacy
    pickle: protocol 2+ opens with 0x80), so a text file is not blamed for holding pickled objects."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def load_official_checkpoint(path: str | Path, device: str | torch.device | None = None) -> ImplicitSR:
    """An official LIIF/LTE/HIIF training checkpoint (``ckpt['model'] = {name, args, sd}``)."""
    path = Path(path)
    device = _device(device)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    if not _looks_like_torch_file(path):
        raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running whatever the file contains
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise WeightsError(f"{path}: not a plain tensor checkpoint (it holds pickled Python objects, "
                               "which are not unpickled, for safety)") from None
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint (UnpicklingError: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    except Exception as exc:  # pickle/zip errors come in many types; none may crash the caller
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint, truncated or damaged? "
                           f"({type(exc).__name__}: {first})") from None
    entry = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(entry, dict) or "name" not in entry or "sd" not in entry:
        raise WeightsError(f"{path}: not an official checkpoint (expected ckpt['model'] with "
                           "'name', 'args' and 'sd')")
    spec = {"name": entry["name"], "args": entry.get("args") or {}}
    model = build_from_state_dict(spec, entry["sd"], str(path))
    return _finish(model, spec, str(path), {"origin": "official checkpoint"}, device)


def save_safetensors(model: ImplicitSR, path: str | Path, metadata: Mapping[str, Any] | None = None,
                     spec: dict[str, Any] | None = None) -> Path:
    """fp16 copy of the floating-point weights (integer buffers as they are) plus the spec."""
    spec = spec or getattr(model, "spec", None)
    if spec is None:
        raise WeightsError("cannot save a model whose spec is unknown")
    state = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "spec": json.dumps(spec)}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = safetensors_bytes(state, metadata=meta)
    with atomic_write(path) as fh:  # whole or not at all, with the umask's permissions (save_file: 0600)
        fh.write(data)
    return path


def load_model(source: str | os.PathLike | dict[str, Any], device: str | torch.device | None = None) -> ImplicitSR:
    """A zoo name (``hiif-edsr`` …), a ``.safetensors`` or official ``.pth`` path, or a spec dict
    (freshly initialised). Raises :class:`WeightsError` with a clear message otherwise, and
    ``ValueError`` for a device this machine does not have (checked first: loading is slow)."""
    device = _device(device)
    if isinstance(source, dict):
        try:
            model = create_model(source)
        except ValueError as exc:
            raise WeightsError(f"spec: {exc}") from exc
        return _finish(model, source, "spec", {}, device)
    text = str(source)
    if text in ZOO:
        if zoo_path(text).is_file():
            return load_safetensors(zoo_path(text), device)
        official = official_checkpoint_in_weights(text)
        if official is not None:
            return load_official_checkpoint(official, device)
        raise WeightsError(f"{text}: weights not installed (expected {zoo_path(text)}; "
                           "HIIF_WEIGHTS_DIR names another folder of weights)")
    path = Path(text)
    if path.suffix == ".safetensors":
        return load_safetensors(path, device)
    if path.suffix in (".pth", ".pt", ".ckpt"):
        return load_official_checkpoint(path, device)
    if path.exists():
        raise WeightsError(f"{path}: unknown weights format (use .safetensors or an official .pth)")
    raise WeightsError(f"unknown model {text!r}; zoo names: {', '.join(ZOO)}; or a path to a "
                       ".safetensors / .pth file")


def zoo_status() -> list[dict[str, Any]]:
    """One row per zoo model: name, parameter count, and where its weights are (if anywhere)."""
    rows = []
    for name, spec in ZOO.items():
        with torch.device("meta"):
            model = create_model(spec)
        params = sum(p.numel() for p in model.parameters())
        path = zoo_path(name)
        official = official_checkpoint_in_weights(name)
        rows.append({"name": name, "params": params,
                     "weights": str(path) if path.is_file() else (str(official) if official else None)})
    return rows
