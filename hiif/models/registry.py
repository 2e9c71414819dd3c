"""Architecture registry: builds modules from official specs ``{"name": ..., "args": {...}}``.

Official LIIF/LTE/HIIF checkpoints store exactly such a spec under ``ckpt["model"]`` (plus ``"sd"``),
so ``create_model(ckpt["model"])`` rebuilds the very network they were trained with.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator: make ``name`` buildable by :func:`create_model`."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def registered_architectures() -> list[str]:
    return sorted(_REGISTRY)


def create_model(spec: dict[str, Any], extra_args: dict[str, Any] | None = None) -> nn.Module:
    """Build a freshly initialised module from an official spec.

    ``extra_args`` are merged over ``spec["args"]`` (the official ``models.make(spec, args=...)``).
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a model spec is a dict with 'name' and 'args', got {spec!r}")
    name = spec["name"]
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown architecture {name!r}; known: {', '.join(registered_architectures())}"
        )
    args = copy.deepcopy(spec.get("args") or {})
    if extra_args:
        args.update(extra_args)
    try:
        return _REGISTRY[name](**args)
    except TypeError as exc:  # wrong argument names in a hand-written or foreign spec
        raise ValueError(f"cannot build {name!r} from args {sorted(args)}: {exc}") from exc
