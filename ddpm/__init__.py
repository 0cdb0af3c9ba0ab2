"""Denoising Diffusion Probabilistic Models: schedule, diffusion math, UNet, training and sampling."""
from .conditional import get_context_mask
from .diffusion import Diffusion
from .schedule import cosine_betas, linear_betas, named_betas
from .unet import UNet

__all__ = ["Diffusion", "UNet", "cosine_betas", "get_context_mask", "linear_betas", "named_betas"]
__version__ = "0.1.0"
