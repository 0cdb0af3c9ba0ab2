"""Writing and loading model folders (ddpm/modelfolder.py): `save_pretrained`, `load_pretrained` and the model card.

    from ddpm.pretrained import load_pretrained
    model, diffusion, config = load_pretrained("data/mnist/model")      # no params.yaml: the folder says it all
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from . import __version__
from .checkpoint import check_trained_diffusion, load_weights
from .device import autocast_dtype, check_sampling_memory, with_autocast
from .diffusion import Diffusion
from .guidance import AutoGuidance
from .io import atomic_path, save_text
from .modelfolder import CARD, CONFIG, FORMAT, FORMAT_VERSION, GUIDE, WEIGHTS, read_config
from .unet import UNet

TRAINING_CHECKPOINT = "checkpoint.pt"  # beside the model files: the finished run's full state (resume, raw weights)


def save_pretrained(folder: str | Path, unet: UNet, diffusion: dict[str, Any], *, sample_shape: tuple[int, ...],
                    guide: dict[str, torch.Tensor] | None = None, about: dict[str, Any] | None = None,
                    metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """Write a model folder: the network's weights (`unet`, e.g. the EMA copy) as model.safetensors, `guide` (the
    early weights autoguidance uses) as guide.safetensors, config.json (the network's constructor arguments, the
    diffusion params section, the image shape, `about`: data and training) and the model card with `metrics`. Each
    file is written atomically; returns the config."""
    folder = Path(folder)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "ddpm_version": __version__,
              "unet": unet.config, "parameters": sum(q.numel() for q in unet.parameters()),
              "diffusion": dict(diffusion), "sample_shape": list(sample_shape),
              **(about or {}), "guide": {"file": GUIDE, **(about or {}).get("guide", {})} if guide is not None else None}
    for name, state in ((WEIGHTS, unet.state_dict()), (GUIDE, guide)):
        if state is not None:
            with atomic_path(folder / name) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    save_text(json.dumps(config, indent=2) + "\n", folder / CONFIG)
    save_text(model_card(config, metrics or {}), folder / CARD)
    return config


def load_pretrained(folder: str | Path, device: torch.device | str = "cpu", amp: str = "off",
                    autoguidance: float = 0.0) -> tuple[nn.Module, Diffusion, dict[str, Any]]:
    """(network, diffusion, config) of a model folder: the EMA weights on `device` (under bf16 autocast where `amp`
    asks for it), guided by the folder's early weights with weight w = autoguidance > 0 (AutoGuidance)."""
    config, device = read_config(folder), torch.device(device)
    dtype = autocast_dtype(amp, device)
    model = with_autocast(UNet.from_pretrained(folder).to(device), dtype)
    if autoguidance:
        model = AutoGuidance(model, with_autocast(UNet.from_pretrained(folder, GUIDE).to(device), dtype), autoguidance)
    return model, Diffusion.from_pretrained(folder), config


def model_card(config: dict[str, Any], metrics: dict[str, float]) -> str:
    """README.md of a model folder: Hugging Face's front matter, what the model is, the run's figures, how to use it."""
    training, unet = config.get("training", {}), config["unet"]
    conditional = unet.get("context_dim", 0) > 0
    lines = ["---", "library_name: ddpm-dvc", "tags: [diffusion, ddpm, "
             + ("class-conditional" if conditional else "unconditional-image-generation") + "]"]
    if "MNIST" in str(config.get("data", "")):
        lines.append("datasets: [mnist]")
    lines += ["---", "", f"# {config.get('title', 'A DDPM noise predictor')}", "",
              f"ε_θ(x_t, t{', c' if conditional else ''}) of Ho et al. (2020) for {config['sample_shape']} images in "
              f"[−1, 1]: a UNet of {config.get('parameters', 0) / 1e6:.2f} M parameters, {config['diffusion'].get('T')} "
              f"steps of a {config['diffusion'].get('schedule')} β schedule, "
              f"predicting {config['diffusion'].get('prediction')}. Trained on {config.get('data', 'its data')}.", ""]
    rows = [("images seen", training.get("images_seen")), ("epochs", training.get("epochs")),
            ("optimizer steps", training.get("steps")), ("final epoch loss", training.get("loss")),
            ("minutes of training", training.get("minutes")), ("made by", training.get("stage")),
            ("ddpm release", config.get("ddpm_version"))]
    rows += [(f"{name} (after the last epoch, {metrics.get('probe', 'quality probe')})", value)
             for name, value in metrics.items() if name != "probe"]
    lines += ["| | |", "| --- | --- |"] + [f"| {name} | {_fmt(value)} |" for name, value in rows if value is not None]
    if config.get("guide"):
        lines += ["", f"It keeps the EMA weights after step {config['guide'].get('step')} ({GUIDE}): autoguidance "
                  "(Karras et al. 2024) guides the model away from them, `--autoguidance 1.5`."]
    lines += ["", "## Use", "", "```bash", "ddpm sample MODEL -n 16 -o grid.png" + (" --label 3 --guidance 2" if conditional else ""),
              "```", "", "```python", "from ddpm.pretrained import load_pretrained",
              "model, diffusion, config = load_pretrained(\"MODEL\")", "```", ""]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def load_unet(folder: str | Path, diffusion_params: dict[str, Any], device: torch.device, amp: str,
              which: str = "ema", batch: tuple[int, str] | None = None, autoguidance: float = 0.0) -> nn.Module:
    """A pipeline stage's network: `load_pretrained`'s, after checking that the folder was trained with the stage's
    diffusion settings and (batch = (batch size, its params key)) that a batch of samples fits the device's memory.
    which = "raw": the raw (not averaged) weights, from the training checkpoint kept in the folder."""
    config = read_config(folder)
    check_trained_diffusion(Path(folder), config["diffusion"], diffusion_params)
    if batch is not None:
        context = config["unet"].get("context_dim", 0)
        check_sampling_memory(lambda: UNet(**config["unet"]), tuple(config["sample_shape"]), batch[0], device, batch[1],
                              context=torch.zeros(1, context) if context else None)
    if which == "ema":
        return load_pretrained(folder, device, amp, autoguidance)[0]
    if autoguidance:
        raise ValueError("autoguidance guides the EMA weights (weights: ema); the raw weights are compared unguided")
    raw = load_weights(Path(folder) / TRAINING_CHECKPOINT, UNet(**config["unet"]), "model").to(device)
    return with_autocast(raw, autocast_dtype(amp, device))
