"""Device and precision policy: which device a stage runs on, and where bf16 autocast pays.

Every stage resolves `runtime.device` and `runtime.amp` (or its own override) through these functions,
so one rule decides everywhere: bf16 only where the hardware multiplies it natively.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

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


# -- memory: refuse, before any work, what cannot fit ---------------------------------------------------------------
def available_memory(device: torch.device) -> int | None:
    """Bytes free on the device: CUDA's free memory, or the host's MemAvailable (Linux); None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu" and Path("/proc/meminfo").exists():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def footprint(build: Callable[[], nn.Module], shape: tuple[int, ...], **kwargs: Any) -> tuple[int, int]:
    """(parameters, activation values per image) of the model `build` makes, measured on the meta device: nothing is
    allocated, so a model too large for the machine is measured, not built. Activations: every module's output in
    a forward pass of one image, what a training step keeps for its backward pass."""
    with torch.device("meta"):
        model = build()
        outputs = [0]

        def count(_: nn.Module, __: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                outputs[0] += out.numel()

        hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
        meta_kwargs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        model(torch.zeros(1, *shape), torch.zeros(1, dtype=torch.long), **meta_kwargs)
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for p in model.parameters()), outputs[0]


def check_memory(needed: int, device: torch.device, what: str, advice: str) -> None:
    """One line, before any work, when `needed` bytes exceed what the device has free."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise MemoryError(f"{what} needs about {needed / 2**30:.1f} GiB but {device.type} has {free / 2**30:.1f} GiB "
                          f"free; {advice}")


def check_training_memory(build: Callable[[], nn.Module], shape: tuple[int, ...], batch: int, device: torch.device,
                          key: str, **kwargs: Any) -> None:
    """Weights, gradients, Adam's two moments and the EMA (20 bytes a parameter in fp32) and the activations of a
    batch: refused in one line naming `key` when they cannot fit."""
    params, per_image = footprint(build, shape, **kwargs)
    check_memory(20 * params + 4 * per_image * batch, device,
                 f"training {params / 1e6:.1f} M parameters on batches of {batch} ({key})",
                 f"lower {key} or the model's channels")


def check_sampling_memory(build: Callable[[], nn.Module], shape: tuple[int, ...], batch: int, device: torch.device,
                          key: str, **kwargs: Any) -> None:
    """Sampling holds the weights and, per image, at most one forward pass's activations: refused in one line naming
    `key` (the batch size) when a batch cannot fit."""
    params, per_image = footprint(build, shape, **kwargs)
    check_memory(4 * params + 4 * per_image * batch, device, f"sampling batches of {batch} ({key})",
                 f"lower {key}")
