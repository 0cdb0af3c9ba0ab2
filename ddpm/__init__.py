"""Denoising Diffusion Probabilistic Models: schedule, diffusion math, UNet, samplers and guided sampling."""
from .diffusion import Diffusion
from .guidance import ClassifierFreeGuidance, complete_image, get_context_mask
from .samplers import SAMPLERS, run_chain, sample, sample_batched
from .schedule import cosine_betas, linear_betas, named_betas
from .unet import UNet

__all__ = ["SAMPLERS", "ClassifierFreeGuidance", "Diffusion", "UNet", "complete_image", "cosine_betas",
           "get_context_mask", "linear_betas", "named_betas", "run_chain", "sample", "sample_batched"]
__version__ = "0.6.0"
