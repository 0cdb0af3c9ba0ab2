"""A model folder, diffusers' layout: what a user keeps, shares and loads without params.yaml or the pipeline.

    config.json          the network's constructor arguments ("unet"), the diffusion settings ("diffusion"), what it
                         learned from ("data", "training"), the early weights kept for autoguidance ("guide"), the
                         release that wrote it ("ddpm_version")
    model.safetensors    the EMA weights
    guide.safetensors    the early EMA weights that autoguidance guides away from (when the run kept them)
    README.md            the model card (Hugging Face's convention: YAML front matter, then prose)

Reading one needs torch and safetensors only; every problem is one line naming the file and what to do.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

FORMAT, FORMAT_VERSION = "ddpm-model", 1
CONFIG, WEIGHTS, GUIDE, CARD = "config.json", "model.safetensors", "guide.safetensors", "README.md"
SECTIONS = ("unet", "diffusion")  # what every config.json must describe


class ModelFolderError(ValueError):
    """A model folder that is missing, damaged, or whose parts do not fit together (one line)."""


def read_config(folder: str | Path) -> dict[str, Any]:
    """config.json of a model folder, checked: its format, version and the sections a model needs."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder (one holds {CONFIG} and {WEIGHTS}; a training stage "
                               "writes it, e.g. data/mnist/model after dvc repro or dvc pull)")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path}: not found; {folder} is not a model folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFolderError(f"{path}: not valid JSON ({type(e).__name__}); restore it (dvc checkout) or "
                               "re-run the training stage") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: not a {FORMAT} config (format {config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"{path}: format version {config.get('format_version')!r}; this release reads "
                               f"{FORMAT_VERSION}: use the ddpm release named in it ({config.get('ddpm_version')})")
    for section in SECTIONS:
        if not isinstance(config.get(section), dict):
            raise ModelFolderError(f"{path}: no '{section}' section; the folder is damaged: re-run the training stage")
    if "num_timesteps" in config["unet"]:  # a folder of 0.7, which named the UNet's T so
        config["unet"]["T"] = config["unet"].pop("num_timesteps")
    return config


def read_weights(folder: str | Path, name: str = WEIGHTS) -> dict[str, torch.Tensor]:
    """A safetensors file of the folder, as a state dict on the CPU."""
    path = Path(folder) / name
    if not path.is_file():
        raise ModelFolderError(f"{path}: not found" + ("; this model kept no early weights for autoguidance "
                               "(train_mnist.guide_step = 0): sample it without autoguidance" if name == GUIDE else ""))
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFolderError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:80]}); restore it "
                               "(dvc checkout) or re-run the training stage") from None


def load_into(model: torch.nn.Module, folder: str | Path, name: str = WEIGHTS) -> torch.nn.Module:
    """The folder's weights `name` loaded into `model` (built from its config.json), in eval mode."""
    state = read_weights(folder, name)
    mine = model.state_dict()
    missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    wrong = [k for k in set(mine) & set(state) if mine[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}" if unexpected
                  else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, the config builds {tuple(mine[wrong[0]].shape)}")
        raise ModelFolderError(f"{Path(folder) / name}: does not fit the network of {CONFIG} ({detail}); the folder "
                               "mixes files of different models: re-run the training stage")
    model.load_state_dict(state)
    return model.eval()
