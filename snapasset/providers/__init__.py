"""Image providers: the ImageProvider port and its adapters (local, openai)."""

from __future__ import annotations

import importlib

from snapasset.config import ConfigError, Settings
from snapasset.providers.base import GeneratedImage, GenerationRequest, ImageProvider, for_model, safety_identifier

__all__ = ["ImageProvider", "GenerationRequest", "GeneratedImage", "build_provider", "for_model", "safety_identifier"]


def build_provider(settings: Settings) -> ImageProvider:
    """local (offline, default), openai (OPENAI_API_KEY set), or `package.module:factory`
    — a factory taking the settings, for benchmarks and on-prem models."""
    if settings.provider == "local":
        from snapasset.providers.local import LocalProvider
        return LocalProvider(latency=settings.local_latency)
    if settings.provider == "openai":
        from snapasset.providers.openai import OpenAIProvider
        return OpenAIProvider(api_key=settings.openai_api_key, model=settings.image_model,
                              base_url=settings.openai_base_url, timeout=settings.openai_timeout)
    module_name, _, factory_name = settings.provider.partition(":")
    if not factory_name:
        raise ConfigError(f"unknown provider {settings.provider!r}: use local, openai or module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load provider {settings.provider!r}: {exc}") from None
    return factory(settings)
