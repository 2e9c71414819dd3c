"""Encoders, implicit decoders and the registry that builds them from official specs."""
from .registry import create_model, register, registered_architectures
from . import common  # noqa: F401  (registers "mlp")
from .encoders import edsr, rdn, swinir  # noqa: F401  (register the encoders)
from .decoders import hiif, liif, lte  # noqa: F401  (register the decoders)
from .decoders.base import Features, ImplicitSR

__all__ = ["create_model", "register", "registered_architectures", "Features", "ImplicitSR"]
