"""Checkpoints: versioned, checksummed, written atomically with one previous copy kept; and loading their
weights for sampling."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .device import autocast_dtype, with_autocast
from .io import atomic_path, ensure_free_space
from .unet import UNet

CHECKPOINT_FORMAT = "ddpm-checkpoint"
CHECKPOINT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, altered or of another format version (one line)."""


def previous_path(path: str | os.PathLike) -> Path:
    """Where the checkpoint before the latest is kept: checkpoint.pt → checkpoint.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write {format, version, sha256, payload} atomically, after checking free disk; the old file becomes .prev."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    record = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
              "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    ensure_free_space(path.parent, len(payload), "checkpoint")
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
        if path.exists():  # a kill between the two renames leaves .prev and no latest: load_checkpoint falls back
            os.replace(path, previous_path(path))


def load_checkpoint(path: str | os.PathLike, what: str = "training checkpoint") -> dict[str, Any]:
    """Read and verify a checkpoint written by save_checkpoint (format, version, sha256 of the payload)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path}: {what} is truncated or not a checkpoint; "
                              f"delete it (training resumes from {previous_path(path).name} if present)") from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} file (an older or foreign checkpoint); delete it and re-run dvc repro")
    if record.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: {what} has format version {record.get('version')}; this code reads version "
                              f"{CHECKPOINT_VERSION}: delete it and re-run dvc repro, or use the matching ddpm release")
    if hashlib.sha256(record["payload"]).hexdigest() != record["sha256"]:
        raise CheckpointError(f"{path}: {what} fails its sha256 check (altered or damaged on disk); delete it "
                              f"(training resumes from {previous_path(path).name} if present)")
    return torch.load(io.BytesIO(record["payload"]), map_location="cpu", weights_only=True)


def load_weights(checkpoint: Path, model: nn.Module, which: str = "ema") -> nn.Module:
    """Load the EMA (or raw, which='model') weights of a training checkpoint into `model`, in eval mode."""
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state[which])
    except (KeyError, RuntimeError) as e:
        raise ValueError(f"{checkpoint}: weights do not fit the model in params.yaml ({str(e).splitlines()[0]}); "
                         "re-run training (dvc repro)") from e
    return model.eval()


def load_for_sampling(checkpoint: Path, model: nn.Module, device: torch.device, amp: str, which: str = "ema") -> nn.Module:
    """The EMA (or raw) weights of a training checkpoint, on `device`, under bf16 autocast when `amp` asks for it."""
    return with_autocast(load_weights(checkpoint, model, which).to(device), autocast_dtype(amp, device))


def load_unet(checkpoint: Path, model_params: dict[str, Any], num_timesteps: int, device: torch.device, amp: str,
              in_channels: int = 1, context_dim: int = 0, which: str = "ema") -> nn.Module:
    """A trained UNet for sampling: built from its params section, the checkpoint's EMA (or raw) weights loaded."""
    model = UNet.from_params(model_params, in_channels, num_timesteps, context_dim)
    return load_for_sampling(checkpoint, model, device, amp, which)
