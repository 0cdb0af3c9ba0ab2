"""Denoising Diffusion Probabilistic Models: schedule, diffusion math, UNet, samplers and guided sampling.

The names below load on first use (PEP 562, as diffusers' lazy modules do): `import ddpm` runs no torch code, and a
module that imports `ddpm.data` does not pull in the UNet — so DVC's derived code dependencies of a stage are the
modules it really uses, and touching `ddpm/unet.py` stales only the stages that build a network.
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

_LAZY = {  # public name → the submodule that defines it
    "Diffusion": "diffusion",
    "ClassifierFreeGuidance": "guidance", "complete_image": "guidance", "get_context_mask": "guidance",
    "SAMPLERS": "samplers", "run_chain": "samplers", "sample": "samplers", "sample_batched": "samplers",
    "cosine_betas": "schedule", "linear_betas": "schedule", "named_betas": "schedule",
    "UNet": "unet",
    "load_pretrained": "pretrained",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name == "__version__":  # one source: the installed distribution's metadata (pyproject.toml)
        try:
            return version("ddpm-dvc")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'ddpm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])
