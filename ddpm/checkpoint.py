"""Training checkpoints: versioned, checksummed, written atomically with one previous copy kept; a run's bookkeeping
(`Checkpointer`: which checkpoint a run of these settings resumes, its fingerprint); loading their weights (a
fine-tune's start, the raw weights). The model folder a user keeps is ddpm/pretrained.py's."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from .io import atomic_path, ensure_free_space, folder_files, restore_files

CHECKPOINT_FORMAT = "ddpm-checkpoint"
CHECKPOINT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, altered or of another format version (one line)."""


def previous_path(path: str | os.PathLike) -> Path:
    """Where the checkpoint before the latest is kept: checkpoint.pt → checkpoint.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write {format, version, sha256, payload} atomically, after checking free disk for its exact size; the old file
    becomes .prev only if it verifies (a damaged latest never replaces a good previous copy)."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    record = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,  # a uint8 tensor stores bytes as they are
                "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, record)
    data = record.getvalue()
    ensure_free_space(path.parent, len(data), "checkpoint")
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if path.exists():  # a kill between the two renames leaves .prev and no latest: load_checkpoint falls back
            try:
                _verified_record(path)
                os.replace(path, previous_path(path))
            except CheckpointError:  # keep the good .prev; the damaged latest is overwritten below
                pass


def load_checkpoint(path: str | os.PathLike, what: str = "training checkpoint") -> dict[str, Any]:
    """Read and verify a checkpoint written by save_checkpoint (format, version, sha256 of the payload)."""
    record = _verified_record(Path(path), what)
    return torch.load(io.BytesIO(record["payload"]), map_location="cpu", weights_only=True)


def _verified_record(path: Path, what: str = "training checkpoint") -> dict[str, Any]:
    """The checkpoint's record, its format, version and sha256 checked (the payload is not unpickled)."""
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
    if isinstance(record.get("payload"), torch.Tensor):
        record["payload"] = record["payload"].numpy().tobytes()
    if not isinstance(record.get("payload"), bytes) or hashlib.sha256(record["payload"]).hexdigest() != record.get("sha256"):
        raise CheckpointError(f"{path}: {what} fails its sha256 check (altered or damaged on disk); delete it "
                              f"(training resumes from {previous_path(path).name} if present)")
    return record


def load_weights(checkpoint: Path, model: nn.Module, which: str = "ema",
                 diffusion_params: dict[str, Any] | None = None, new: str | None = None) -> nn.Module:
    """Load the EMA (or raw, which='model') weights of a training checkpoint into `model`, in eval mode; with
    `diffusion_params`, first check that the checkpoint was trained with those diffusion settings. new: a prefix of
    parameters the checkpoint may lack (e.g. "context_mlp." when a conditional model starts from an unconditional
    one); they keep their initial values."""
    state = load_checkpoint(checkpoint)
    if diffusion_params is not None:
        check_diffusion(checkpoint, state, diffusion_params)
    if which == "guide" and which not in state:
        raise ValueError(f"{checkpoint}: no early weights for autoguidance (trained with train_mnist.guide_step = 0, "
                         "or by a release before 0.5); set guide_step > 0 (e.g. 200) and re-run train_mnist (dvc repro), "
                         "or set the autoguidance to 0")
    try:
        missing, unexpected = model.load_state_dict(state[which], strict=new is None)
        if unexpected or any(not k.startswith(new or "") for k in missing):
            raise RuntimeError(f"missing {missing[:2]}, unexpected {unexpected[:2]}")
    except (KeyError, RuntimeError) as e:
        raise ValueError(f"{checkpoint}: weights do not fit the model in params.yaml ({str(e).splitlines()[0]}); "
                         "re-run training (dvc repro)") from e
    return model.eval()


def check_diffusion(checkpoint: Path, state: dict[str, Any], diffusion_params: dict[str, Any]) -> None:
    """Refuse, in one line naming both values, a checkpoint trained with other diffusion settings than `diffusion_params`
    (a model trained for T = 50 sampled with T = 1000 gives wrong images, not an error)."""
    recorded = state.get("fingerprint") if isinstance(state.get("fingerprint"), dict) else {}
    trained = recorded.get("diffusion", recorded.get("section0"))  # section0: checkpoints of 0.1
    check_trained_diffusion(checkpoint, trained, diffusion_params)


def check_trained_diffusion(where: Path, trained: Any, diffusion_params: dict[str, Any]) -> None:
    """Refuse in one line a model (a checkpoint, a model folder) trained with other diffusion settings."""
    if not isinstance(trained, dict):
        return
    for key, value in diffusion_params.items():
        if key in trained and trained[key] != value:
            raise ValueError(f"{where}: trained with diffusion.{key} = {trained[key]!r}, but params.yaml has "
                             f"diffusion.{key} = {value!r}; set it back, or re-train (dvc repro)")


# -- a training run's checkpoints ---------------------------------------------------------------------------------
class Trainable(Protocol):
    """What a checkpoint is made from and put back into (ddpm/train.py's TrainLoop)."""
    epoch: int
    step: int

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class Checkpointer:
    """A run's running checkpoint at `path` (saved every epoch, one previous copy kept; a killed run resumes from it)
    with the run's `fingerprint` and the files of the folder `carried` (dvclive's: DVC deletes a stage's outputs
    before it runs it, and a resumed run continues that history). resume_from: finished checkpoints to continue from
    when the running one is missing or of other settings (e.g. the stage's last output, which DVC keeps in its cache).
    Only the main process writes; every process resumes."""

    def __init__(self, path: str | os.PathLike, fingerprint: dict[str, Any], resume_from: tuple[Path, ...] = (),
                 carried: Path | None = None, is_main: bool = True, say: Callable[[str], None] | None = None,
                 labels: dict[str, Any] | None = None) -> None:
        self.path, self.fingerprint = Path(path), fingerprint
        self.resume_from = tuple(Path(p) for p in resume_from)
        self.carried, self.is_main = carried, is_main
        self._say = say or (lambda message: print(message, flush=True))
        self.labels = labels or {}  # a fingerprint section's params name, for messages ({"recipe": "train_mnist"})
        self.saves = 0

    def state(self, loop: Trainable) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, **loop.state(), "live": folder_files(self.carried)}

    def save(self, loop: Trainable) -> None:
        if self.is_main:
            save_checkpoint(self.state(loop), self.path)
            self.saves += 1

    def resume(self, loop: Trainable) -> bool:
        """Continue the running checkpoint (else the copy before it) if it was made with the same fingerprint, else the
        first of `resume_from` that was; put back the carried folder's files it holds. False: a fresh start."""
        state, path = self._running_state(), self.path
        if state is not None and state.get("fingerprint") != self.fingerprint:  # replaced by this run's first save
            self.say(f"{path}: a run with other settings ({differing(state.get('fingerprint'), self.fingerprint, self.labels)}); "
                     "not resumed")
            state = None
        for path in self.resume_from if state is None else ():
            try:
                found = load_checkpoint(path) if path.exists() else {}
            except CheckpointError as e:
                self.say(f"warning: {e}; not resumed")
                continue
            if found.get("fingerprint") == self.fingerprint:
                state = found
                break
        if state is None:
            return False
        loop.load_state(state)
        if self.is_main and self.carried is not None:
            restore_files(self.carried, state.get("live", {}))
        self.say(f"{path}: resuming after epoch {loop.epoch} (step {loop.step})")
        return True

    def finish(self, loop: Trainable, output: Path) -> None:
        """The finished run's checkpoint to `output` (the stage's DVC output); the running copies are removed."""
        if self.is_main:
            save_checkpoint(self.state(loop), output)
            for path in (self.path, previous_path(self.path)):
                path.unlink(missing_ok=True)

    def _running_state(self) -> dict[str, Any] | None:
        """The running checkpoint, or the copy before it where the latest is damaged; None when there is none."""
        for path in (self.path, previous_path(self.path)):
            if not path.exists():
                continue
            try:
                return load_checkpoint(path)
            except CheckpointError as e:
                if path != self.path or not previous_path(path).exists():
                    raise
                self.say(f"warning: {e}; falling back to {previous_path(path)}")
        return None

    def say(self, message: str) -> None:
        if self.is_main:  # one line per run, not one per process
            self._say(message)


VOLATILE = {"epochs", "log_every", "monitor_n", "monitor_steps", "monitor_judge_n", "device", "monitor_guidance",
            "monitor_prompts", "nproc"}  # run length, logging, placement: a run may resume with other values
# Keys added after a release, at the value that does what that release did: left out of the fingerprint there, so a
# checkpoint of that release still resumes (0.4 added model.conditioning, "add" being 0.3's residual block; 0.5
# train_mnist.guide_step, 0 taking no snapshot).
ADDED_LATER = {"conditioning": "add", "guide_step": 0}


def fingerprint(sections: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What must match for a checkpoint to be continued: every setting that changes the result (not the run length,
    logging or the number of processes). Give `amp` as the precision it resolves to, so that amp: auto and off
    on a CPU without native bf16 (the same arithmetic) count as equal."""
    def kept(k: str, v: Any) -> bool:
        return k not in VOLATILE and not (k in ADDED_LATER and v == ADDED_LATER[k])
    return {**extra, **{name: {k: v for k, v in s.items() if kept(k, v)} for name, s in sections.items()}}


def differing(old: Any, new: dict[str, Any], labels: dict[str, Any] | None = None) -> str:
    """The settings that differ between two fingerprints, e.g. 'train_mnist.lr 0.0002 → 0.0001' (labels: the params
    section each fingerprint section stands for, {"recipe": "train_mnist"})."""
    if not isinstance(old, dict):
        return "a checkpoint of an older release"
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            label = (labels or {}).get(name, name)  # a section's name, or {key: its section} for a merged one
            changes += [f"{label.get(k, name) if isinstance(label, dict) else label}.{k} {a.get(k)!r} → {b.get(k)!r}"
                        for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(f"{name} {a!r} → {b!r}")
    return ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
