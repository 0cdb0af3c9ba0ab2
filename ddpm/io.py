"""Atomic file writes: every output goes to a temporary name in its folder and is renamed into place."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_bytes(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (the format comes from the path's suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)


def load_torch(path: str | os.PathLike, what: str) -> Any:
    """torch.load with a one-line error naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; run the stage that makes it (dvc repro)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: cannot read {what} ({type(e).__name__}: {e}); delete it and re-run dvc repro") from e


def image_grid_pil(images: torch.Tensor, nrow: int = 4, padding: int = 2) -> Any:
    """Images in [−1, 1], (N, C, H, W), as one PIL image grid."""
    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    return to_pil_image(make_grid((images.detach().float().cpu().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=padding))


# -- checkpoints: versioned, checksummed, one previous copy kept ---------------------------------
CHECKPOINT_FORMAT = "ddpm-checkpoint"
CHECKPOINT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, altered or of another format version (one line)."""


def previous_path(path: str | os.PathLike) -> Path:
    """Where the checkpoint before the latest is kept: checkpoint.pt → checkpoint.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise OSError naming the folder and the sizes when fewer than `needed` bytes (plus 1 %) are free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.01 + 2**20:
        raise OSError(f"{folder}: writing the {what} needs {needed / 2**20:.1f} MiB but only {free / 2**20:.1f} MiB "
                      "are free; free some space (the last good checkpoint is kept) and re-run to resume")


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
    except Exception as e:
        raise CheckpointError(f"{path}: {what} is truncated or not a checkpoint ({type(e).__name__}); "
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
