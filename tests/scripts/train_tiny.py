"""Train a tiny UNet on fixed random images, resuming from CHECKPOINT; as one process or under torchrun (gloo).

usage: python tests/scripts/train_tiny.py CHECKPOINT EPOCHS [DROPOUT]
       torchrun --nproc_per_node=2 tests/scripts/train_tiny.py CHECKPOINT EPOCHS [DROPOUT]
The SIGKILL test kills it at random points; the DDP tests compare 1 and 2 processes.
"""
import sys
from pathlib import Path

import torch

from ddpm import Diffusion, UNet, distributed, linear_betas
from ddpm.checkpoint import Checkpointer
from ddpm.train import TrainConfig, TrainLoop

checkpoint, epochs = Path(sys.argv[1]), int(sys.argv[2])
dropout = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1  # > 0: the per-rank random streams matter
world, device = distributed.init("cpu")
data = torch.rand(70, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1  # 70: a short last batch
torch.manual_seed(0)
model = UNet(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2, groups=4,
             dropout=dropout, T=100)
cfg = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, warmup_steps=3, ema_decay=0.9, seed=7, log_every=2)
saver = Checkpointer(checkpoint, {"run": "tiny"}, is_main=world.is_main)
trainer = TrainLoop(model, Diffusion(linear_betas(100)), data, cfg, world=world, saver=saver)
saver.resume(trainer)
print("READY", trainer.epoch, flush=True)
trainer.fit()
print(f"DONE rank {world.rank} of {world.size} saved {saver.saves} times", flush=True)
distributed.shutdown()
