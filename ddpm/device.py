"""Device and precision policy: which device a stage runs on, and where bf16 autocast pays.

Every stage resolves `runtime.device` and `runtime.amp` (or its own override) through these functions,
so one rule decides everywhere: bf16 only where the hardware multiplies it natively.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; or the one named (an error if it is absent)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' but no CUDA device is visible; set runtime.device: auto (or cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device = 'mps' but MPS is not available; set runtime.device: auto (or cpu)")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 natively: CUDA (compute capability ≥ 8), or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated: on an AVX2-only CPU a bf16 matrix product measured 300× slower than fp32.
    """
    if device.type == "cuda":  # not is_bf16_supported(), which also says yes where bf16 is only emulated
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":  # torch.cpu's probes of the CPU's instruction set (private, hence getattr)
        return any(getattr(torch.cpu, probe, lambda: False)()
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


_warned: set[str] = set()


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast: always for amp='bf16', where the device has native bf16 for amp='auto', never for amp='off'."""
    if amp == "bf16" and not native_bf16(device) and device.type not in _warned:
        _warned.add(device.type)  # once per process: a stage resolves amp for the model and for its EMA
        print(f"warning: amp = bf16 on {device.type} without native bf16 (no AVX512-BF16/AMX): it is emulated and "
              "far slower than fp32; set amp: auto (or off) to train and sample in fp32", file=sys.stderr)
    if amp == "bf16" or (amp == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


class Autocast(nn.Module):
    """A noise predictor run under torch.autocast(dtype), returning float32 so that samplers do their math in fp32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x, t, **kwargs).float()


def with_autocast(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """`model` under bf16 (or `dtype`) autocast for sampling; unchanged when dtype is None (amp off)."""
    return model if dtype is None else Autocast(model, dtype)
