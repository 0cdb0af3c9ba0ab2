"""CLIP (open_clip) as the context encoder: image embeddings for training, text embeddings for sampling."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import DataError

WEIGHTS_HELP = ("download the weights file once on a machine with internet (e.g. open_clip_pytorch_model.bin of "
                "the Hugging Face repository laion/CLIP-ViT-B-32-laion2B-s34B-b79K for ViT-B-32) and set "
                "clip.pretrained to its local path")


def register_config(path: Path | str) -> str:
    """Register a custom open_clip model config (a JSON file); returns its model name (the file's stem)."""
    import open_clip

    path = Path(path)
    json.loads(path.read_text())  # a clear JSON error before open_clip's
    open_clip.add_model_config(path)
    return path.stem


class ClipEncoder:
    """L2-normalized CLIP embeddings of uint8 images (N, 3, H, W) and of text prompts."""

    @classmethod
    def from_params(cls, cp: dict, device: torch.device | str = "cpu") -> "ClipEncoder":
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
        cfg = model.visual.preprocess_cfg
        self.size = tuple(cfg["size"]) if isinstance(cfg["size"], (tuple, list)) else (cfg["size"], cfg["size"])
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
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


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image embedding with its prompt's embedding (both unit norm), (N,)."""
    return (image_emb * text_emb).sum(-1)


def embedding_diversity(emb: torch.Tensor) -> float:
    """Mean pairwise cosine distance 1 − cos among unit-norm embeddings (0: all identical)."""
    n = len(emb)
    if n < 2:
        return 0.0
    sim = emb @ emb.T
    return float((1 - sim).sum() / (n * (n - 1)))
