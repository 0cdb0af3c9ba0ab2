"""Draw 7 samples from a fixed random tiny UNet with sample_sharded; rank 0 saves them to OUT.

usage: [torchrun --nproc_per_node=2] python tests/scripts/sample_tiny.py OUT [context]
With `context`: a UNet with a 10-d context, one-hot digits per image (two rows dropped), guidance w = 2.
"""
import sys

import torch

from ddpm import Diffusion, UNet, distributed, linear_betas

world, device = distributed.init("cpu")
torch.manual_seed(0)
model = UNet(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2, groups=4,
             dropout=0.0, T=100, context_dim=10 if "context" in sys.argv[2:] else 0).eval()
with torch.no_grad():
    for p in model.parameters():
        if p.ndim > 1 and not p.any():
            torch.nn.init.normal_(p, std=0.1)  # undo the zero inits, so the output depends on x and t
context = None
if "context" in sys.argv[2:]:
    context = torch.nn.functional.one_hot(torch.tensor([3, 1, 4, 1, 5, 9, 2]), 10).float()
    context[[2, 5]] = 0  # dropped: unconditional rows
x = distributed.sample_sharded(Diffusion(linear_betas(100)), model, 7, (1, 28, 28), 2, 11, world, device,
                               context=context, guidance=2.0, sampler="ddim", steps=5, eta=1.0)
if world.is_main:
    torch.save(x, sys.argv[1])
else:
    assert x is None
distributed.shutdown()
