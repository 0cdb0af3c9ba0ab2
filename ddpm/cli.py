"""The `ddpm` command: sample, complete or export any model folder, outside the pipeline.

    ddpm sample data/mnist/model -n 64 --sampler ddim --steps 50 --seed 0 -o grid.png     (or .pt, .npz)
    ddpm sample data/mnist/model_cfg --label 3 --guidance 2 -o threes.png
    ddpm complete data/mnist/model --image digit.png --hide bottom -o completed.png
    ddpm export data/mnist/model --to diffusers exported/                                 (needs diffusers)
    ddpm info data/mnist/model

Exit status: 0 done; 1 bad input (one line on stderr, "error: …"); 2 a usage error; 130 interrupted. Nothing is
written but -o (refused if it exists, unless --force).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
import warnings
from typing import Any, Callable, NoReturn, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .completion import completion_kwargs, half_mask
from .labels import digit_context
from .device import pick_device
from .export import export_diffusers
from .guidance import ClassifierFreeGuidance, complete_image
from .io import atomic_path, image_grid_pil, one_line
from .modelfolder import ModelFolderError, read_config
from .pretrained import load_pretrained
from .samplers import SAMPLERS, check_sampler, image_generators, sample_batched
from .unet import UNet

MAX_IMAGES, MAX_SCALE, MAX_SIDE = 100_000, 100.0, 4096
FORMATS = (".png", ".pt", ".npz")


class UsageError(ValueError):
    """Bad input the user can fix: printed as one line, exit status 1."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (exit status 2), like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (UsageError, ModelFolderError, ValueError, FloatingPointError, OSError, RuntimeError, MemoryError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="ddpm", description="Sample, complete or export a DDPM model folder.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{sample,complete,export,info}",
                            parser_class=OneLineParser)

    def model_command(name: str, run: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("model", type=Path, help="a model folder (config.json, model.safetensors), e.g. data/mnist/model")
        p.set_defaults(run=run)
        return p

    for name, run, help_ in (("sample", run_sample, "draw images from a model folder"),
                             ("complete", run_complete, "fill in the hidden half of a digit")):
        p = model_command(name, run, help_)
        p.add_argument("-o", "--output", type=Path, required=True, help="where to write: .png (a grid), .pt or .npz")
        p.add_argument("--force", action="store_true", help="overwrite the output if it exists")
        p.add_argument("--sampler", default="ddim", choices=sorted(SAMPLERS), help="default: ddim")
        p.add_argument("--steps", type=int, default=None, help="network evaluations (ddim default 50; ancestral: T)")
        p.add_argument("--eta", type=float, default=1.0, help="DDIM noise: 1 stochastic (default), 0 deterministic")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=int, default=256)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
        p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"], help="bf16 autocast (auto: where native)")
        p.add_argument("--autoguidance", type=float, default=0.0, help="w > 0: guide away from the early weights")
        if name == "sample":
            p.add_argument("-n", type=int, default=16, help="how many images (default 16)")
            p.add_argument("--label", type=int, default=None, help="the digit to draw (a label-conditioned model)")
            p.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance w (with --label)")
        else:
            p.add_argument("--image", type=Path, required=True, help="the digit: a PNG/JPEG, white on black")
            p.add_argument("--hide", required=True, choices=["top", "bottom"], help="which half to fill in")
            p.add_argument("-n", type=int, default=5, help="completions (default 5)")
            p.add_argument("--route", default="mcg", choices=["xt", "mean", "mcg", "replace"], help="default: mcg")
            p.add_argument("--scale", type=float, default=1.0, help="the guidance scale s (default 1)")
    p = model_command("export", run_export, "write a model folder as a diffusers pipeline folder")
    p.add_argument("--to", required=True, choices=["diffusers"])
    p.add_argument("out", type=Path, help="the folder to write (DDPMPipeline.from_pretrained reads it)")
    p.add_argument("--force", action="store_true", help="write into an existing folder")
    model_command("info", run_info, "print a model folder's config.json")
    return ap


def run_sample(a: argparse.Namespace) -> None:
    check_common(a)
    model, diffusion, config = load_model(a)
    if a.label is not None or a.guidance:
        if config["unet"].get("context_dim") != 10:
            raise UsageError(f"{a.model}: not a label-conditioned model (context_dim {config['unet'].get('context_dim')}); "
                             "--label and --guidance need one, e.g. data/mnist/model_cfg")
        if a.label is None or not 0 <= a.label <= 9:
            raise UsageError(f"--label {a.label}: give the digit to draw, 0 to 9 (--guidance needs it)")
        if not 0 <= a.guidance <= MAX_SCALE:
            raise UsageError(f"--guidance {a.guidance}: must be between 0 and {MAX_SCALE:g}")
        model = ClassifierFreeGuidance(model, digit_context([a.label]).to(device_of(model)), a.guidance)
    images = sample_batched(diffusion, model, a.n, tuple(config["sample_shape"]), a.batch_size,
                            generator=image_generators(a.seed, range(a.n), device_of(model)), device=device_of(model),
                            progress=sys.stderr.isatty(), **sampling(a, diffusion.T))
    write_images(images, a.output, a.force)
    print(f"{a.n} images ({a.sampler}, {a.steps} steps) in {a.output}")


def run_complete(a: argparse.Namespace) -> None:
    check_common(a)
    if not 0 <= a.scale <= MAX_SCALE:
        raise UsageError(f"--scale {a.scale}: must be between 0 and {MAX_SCALE:g}")
    model, diffusion, config = load_model(a)
    y = read_image(a.image, tuple(config["sample_shape"])).repeat(a.n, 1, 1, 1)
    mask = half_mask(tuple(y.shape), a.hide)
    device = device_of(model)
    out = complete_image(diffusion, model, (y * mask).to(device), mask.to(device), **completion_kwargs(a.route, a.scale),
                         generator=image_generators(a.seed, range(a.n), device), **sampling(a, diffusion.T))
    write_images(torch.cat([(y * mask)[:1].cpu(), out.cpu()]), a.output, a.force)
    print(f"the masked digit and {a.n} completions ({a.route}, scale {a.scale:g}) in {a.output}")


def run_export(a: argparse.Namespace) -> None:
    if a.out.exists() and any(a.out.iterdir()) and not a.force:
        raise UsageError(f"{a.out}: exists and is not empty; choose another folder or add --force")
    notes = export_diffusers(a.model, a.out)
    for note in notes:
        print(f"note: {note}")
    print(f"{a.out}: a diffusers pipeline folder; `import ddpm.diffusers_unet` (diffusers loads only modules already "
          f"imported), then diffusers.DDPMPipeline.from_pretrained('{a.out}') samples it")


def run_info(a: argparse.Namespace) -> None:
    config = read_config(a.model)
    UNet.from_pretrained(a.model)  # the weights must load too: info vouches for the whole folder
    print(json.dumps(config, indent=2))


# -- helpers --------------------------------------------------------------------------------------------------------
def check_common(a: argparse.Namespace) -> None:
    """Every bad number named in one line, before any work."""
    if not 1 <= a.n <= MAX_IMAGES:
        raise UsageError(f"-n {a.n}: must be between 1 and {MAX_IMAGES}")
    if not 1 <= a.batch_size <= MAX_IMAGES:
        raise UsageError(f"--batch-size {a.batch_size}: must be between 1 and {MAX_IMAGES}")
    if not 0 <= a.eta <= 1:
        raise UsageError(f"--eta {a.eta}: must be between 0 (deterministic DDIM) and 1")
    if not 0 <= a.autoguidance <= MAX_SCALE:
        raise UsageError(f"--autoguidance {a.autoguidance}: must be between 0 and {MAX_SCALE:g}")
    if not 0 <= a.seed < 2**31:
        raise UsageError(f"--seed {a.seed}: must be between 0 and 2^31 − 1")
    check_output(a.output, a.force)


def check_output(path: Path, force: bool) -> None:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {path}: the name must end in {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist")
    if path.exists() and not force:
        raise UsageError(f"-o {path}: exists; choose another name or add --force")


def load_model(a: argparse.Namespace) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    try:
        device = pick_device(a.device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"--device {a.device}: {e}") from None
    return load_pretrained(a.model, device, a.amp, a.autoguidance)


def sampling(a: argparse.Namespace, T: int) -> dict[str, Any]:
    """The sampler's settings, checked against the model's T."""
    if a.steps is None:
        a.steps = T if a.sampler == "ancestral" else min(50, T)
    check_sampler(a.sampler, a.steps, T)  # the library's own rule: ancestral visits all T steps
    if not 1 <= a.steps <= T:
        raise UsageError(f"--steps {a.steps}: must be between 1 and this model's T = {T}")
    return {"sampler": a.sampler, "steps": a.steps, "eta": a.eta}


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def read_image(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """An image file as (1, C, H, W) in [−1, 1], converted to the model's channels and resized to its size."""
    channels, height, width = shape
    if not path.is_file():
        raise UsageError(f"--image {path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # one line, not Pillow's warning
            with Image.open(path) as img:
                if max(img.size) > MAX_SIDE:  # known from the header, before any pixel is decoded
                    raise UsageError(f"--image {path}: {img.size[0]}×{img.size[1]} pixels; at most {MAX_SIDE} a side "
                                     f"(the model works at {width}×{height})")
                img = img.convert("L" if channels == 1 else "RGB")
                img.load()
                if img.size != (width, height):
                    img = img.resize((width, height), Image.LANCZOS)
                pixels = np.asarray(img, dtype=np.float32)
    except UsageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UsageError(f"--image {path}: too many pixels for an image of a digit (at most {MAX_SIDE} a side)") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UsageError(f"--image {path}: not a readable image ({type(e).__name__})") from None
    x = torch.from_numpy(pixels.copy()) / 127.5 - 1
    return (x[None, None] if channels == 1 else x.permute(2, 0, 1)[None])


def write_images(images: torch.Tensor, path: Path, force: bool) -> None:
    """Images in [−1, 1]: a PNG grid, the tensor (.pt) or uint8 and float arrays (.npz); atomically."""
    check_output(path, force)  # again: the folder or file may have changed while sampling
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".png":
            image_grid_pil(images, nrow=min(8, len(images))).save(tmp, format="png")
        elif suffix == ".pt":
            torch.save(images.cpu(), tmp)
        else:
            with open(tmp, "wb") as f:
                x = images.cpu().float()
                np.savez(f, images=x.numpy(), uint8=((x + 1) * 127.5).round().clamp(0, 255).byte().numpy())


if __name__ == "__main__":
    raise SystemExit(main())
