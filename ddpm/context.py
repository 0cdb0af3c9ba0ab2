"""The CLIP context encoder (open_clip) for faces. (The MNIST twin's digit labels are ddpm/labels.py.)

CLIP gives image embeddings for training and text embeddings of prompts for sampling; both unit-norm.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import labels  # noqa: F401  (0.7's digit helpers, served by __getattr__)
from .deprecation import renamed_attributes
from .io import DataError, load_torch, save_torch

# -- CLIP --------------------------------------------------------------------------------------------------------
WEIGHTS_HELP = ("download the weights file once on a machine with internet (e.g. open_clip_pytorch_model.bin of "
                "the Hugging Face repository laion/CLIP-ViT-B-32-laion2B-s34B-b79K for ViT-B-32) and set "
                "clip.pretrained to its local path")


def register_config(path: Path | str) -> str:
    """Register a custom open_clip model config (a JSON file); returns its model name (the file's stem)."""
    import open_clip  # heavy: imported only where CLIP is used

    path = Path(path)
    json.loads(path.read_text())  # a clear JSON error before open_clip's
    open_clip.add_model_config(path)
    return path.stem


class ClipEncoder:
    """L2-normalized CLIP embeddings of uint8 images (N, 3, H, W) and of text prompts."""

    @classmethod
    def from_params(cls, cp: dict[str, Any], device: torch.device | str = "cpu") -> "ClipEncoder":
        """From the `clip` params section: a registered custom config (clip.config) or a named open_clip model."""
        return cls(register_config(cp["config"]) if cp["config"] else cp["model"], cp["pretrained"], device)

    def __init__(self, model_name: str, pretrained: str | None, device: torch.device | str = "cpu") -> None:
        import open_clip

        self.name = model_name
        if pretrained in (None, "", "none"):
            warnings.warn(f"CLIP {model_name} with random weights (clip.pretrained = none): its embeddings carry no meaning",
                          stacklevel=2)
            pretrained = None
        elif Path(pretrained).suffix and not Path(pretrained).exists():
            raise DataError(f"clip.pretrained = {pretrained!r}: no such file; {WEIGHTS_HELP}")
        try:
            model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device)
        except RuntimeError as e:
            raise DataError(f"clip: cannot load {model_name} weights {pretrained!r} ({str(e).splitlines()[0][:160]}); "
                            f"offline? {WEIGHTS_HELP}") from None
        self.model = model.eval()
        self.device = torch.device(device)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        preprocess = model.visual.preprocess_cfg
        self.size = tuple(preprocess["size"]) if isinstance(preprocess["size"], (tuple, list)) else (preprocess["size"], preprocess["size"])
        self.mean = torch.tensor(preprocess["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocess["std"], device=self.device).view(1, 3, 1, 1)
        self.dim = int(self.encode_texts(["a photo"]).shape[1])

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) → CLIP's resize and normalization → unit-norm embeddings (N, D), float32 on the CPU."""
        x = images.to(self.device).float() / 255.0
        x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return F.normalize(self.model.encode_image((x - self.mean) / self.std).float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → unit-norm text embeddings (N, D); a prompt beyond the context length is truncated with a warning."""
        if not prompts:
            raise ValueError("prompts: the list is empty; give at least one text prompt")
        limit = self.tokenizer.context_length
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"prompts: {p!r} is not a non-empty string")
            n = len(self.tokenizer.encode(p)) + 2  # start and end tokens
            if n > limit:
                warnings.warn(f"prompt {p[:40]!r}…: {n} tokens, truncated to CLIP's {limit}", stacklevel=2)
        tokens = self.tokenizer(prompts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()

    def encode_images_batched(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """encode_images over `batch_size` images at a time (bounded memory)."""
        return torch.cat([self.encode_images(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def load_embeddings(path: Path) -> dict[str, Any]:
    """embed_clip's output, checked: image embeddings (N, D), a text embedding (D,) per prompt, D and the model name."""
    emb = load_torch(path, "CLIP embeddings")
    ok = (isinstance(emb, dict) and isinstance(emb.get("images"), torch.Tensor) and emb["images"].ndim == 2
          and isinstance(emb.get("texts"), dict) and isinstance(emb.get("dim"), int) and emb["images"].shape[1] == emb["dim"]
          and all(isinstance(v, torch.Tensor) and v.shape == (emb["dim"],) for v in emb["texts"].values()))
    if not ok:
        raise ValueError(f"{path}: not the CLIP embeddings embed_clip writes; delete it and re-run dvc repro embed_clip")
    return emb


def prompt_embeddings(emb: dict[str, Any], prompts: list[str], path: Path) -> torch.Tensor:
    """The text embeddings of `prompts` (P, D), with a one-line error for a prompt embed_clip did not embed."""
    missing = [q for q in prompts if q not in emb["texts"]]
    if missing:
        raise ValueError(f"{path}: no embedding for the prompt {missing[0]!r}; re-run dvc repro embed_clip")
    return torch.stack([emb["texts"][q] for q in prompts])


def embed_images_in_chunks(encoder: ClipEncoder, images: torch.Tensor, names: list[str], folder: Path, chunk: int,
                           batch_size: int, pretrained: str) -> torch.Tensor:
    """CLIP image embeddings of all images, saved `chunk` images at a time in folder/chunk_NNNNN.pt, so a killed run
    resumes at the next chunk. A chunk is reused only if made by the same CLIP from the same faces at the same offsets;
    a damaged or foreign chunk is recomputed."""
    key = {"model": encoder.name, "pretrained": pretrained, "chunk": chunk, "shape": list(images.shape),
           "names": hashlib.sha256("\n".join(names).encode()).hexdigest()}
    parts = []
    for c, start in enumerate(tqdm(range(0, len(images), chunk), desc="CLIP image embeddings")):
        path = folder / f"chunk_{c:05d}.pt"
        emb = _saved_chunk(path, key, min(chunk, len(images) - start), encoder.dim)
        if emb is None:  # not done yet, made from other faces or another model, or damaged
            emb = encoder.encode_images_batched(images[start:start + chunk], batch_size)
            save_torch({"key": key, "emb": emb}, path)
        parts.append(emb)
    return torch.cat(parts)


def _saved_chunk(path: Path, key: dict[str, Any], rows: int, dim: int) -> torch.Tensor | None:
    """A chunk's embeddings if the file holds this key's chunk of the expected shape; None otherwise."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing, truncated, not a torch file
        return None
    ok = (isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("emb"), torch.Tensor)
          and tuple(saved["emb"].shape) == (rows, dim))
    return saved["emb"] if ok else None


__getattr__ = renamed_attributes(globals(), {"digit_context": "labels.digit_context",
                                             "parse_digit_prompt": "labels.parse_digit_prompt"})
