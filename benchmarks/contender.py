"""What the quality-against-minutes benchmark trains: a peer's training loop, the learning rate every peer follows, and
the figures with their standard errors.

A peer (benchmarks/peer*.py) says how it computes its loss, holds its own EMA, and lists its samplers with their
network evaluations per sample; `Peer.train_step` does the rest as each library's example does it (AdamW, gradient
clipping at 1), in bf16 autocast where the CPU has native bf16 (as ours), except where a recipe is kept as documented.

The learning rate: linear warm-up, then a cosine over the *training clock* that reaches 0 when the clock reaches the
longest budget. A cosine over a step count timed beforehand ends early or late when the step rate drifts (0.7's peer
made 1 834 steps of a 1 589-step cosine: its last 13 % ran at learning rate 0); one over the clock ends at the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ddpm.device import native_bf16
from ddpm.metrics import score
from ddpm.params import read_yaml, validate

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def profile_recipe(profile: str = "cpu") -> dict[str, Any]:
    """The batch, peak rate, warm-up, EMA decay and clipping of params.yaml's train_mnist under `profile`."""
    params = read_yaml(PARAMS)
    params["profile"] = profile
    tm = validate(params, ["train_mnist"])["train_mnist"]
    return {k: tm[k] for k in ("batch_size", "lr", "warmup_steps", "ema_decay", "grad_clip")}


# The values the CPU profile's trials chose for ours, read from params.yaml, carried over to the tuned peers: the
# flow's own trials kept them, diffusers' and lucidrains' had none (docs/benchmark.md states every budget).
TUNED = profile_recipe()


def clock_cosine(step: int, progress: float, warmup_steps: int) -> float:
    """The learning rate's factor: min(1, (step+1)/warm-up) · ½(1 + cos(π · progress)), progress = clock / budget."""
    return min(1.0, (step + 1) / max(1, warmup_steps)) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


@dataclass
class Snapshot:
    """A contender's EMA weights when its training clock passed a budget, and what they cost."""
    minutes: float
    trained_minutes: float
    steps: int
    images: int
    lr_fraction: float  # the learning rate at the snapshot, as a share of the peak: 0 where its schedule is over
    weights: Any


class Peer:
    """A peer's training loop. Subclasses set `label`, `recipe`, `tuning`, `model` (the trained network, whose EMA
    copy is sampled), and implement `loss(x0)`, `ema_update()`, `ema_weights()`, `samplers()` and `sample()`."""

    label: str
    tuning: str  # what chose its settings: "documented", "0 trials (ours' values)", or its own trials
    recipe: dict[str, Any]
    model: nn.Module
    amp: bool = True  # bf16 autocast where native; a recipe kept as documented sets False

    def __init__(self, data: torch.Tensor, budget_s: float, seed: int) -> None:
        torch.manual_seed(seed)
        self.data, self.budget_s = data, budget_s
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.step, self.clock = torch.empty(0, dtype=torch.long), 0, 0.0
        self.autocast = self.amp and native_bf16(torch.device("cpu"))

    def make_optimizer(self, **kwargs: Any) -> None:
        r = self.recipe
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=r["lr"], weight_decay=r.get("weight_decay", 0.0), **kwargs)

    def next_batch(self) -> torch.Tensor:
        """The next batch of a shuffled pass over the data (a DataLoader with shuffle=True)."""
        b = self.recipe["batch_size"]
        if len(self.order) < b:
            self.order = torch.randperm(len(self.data), generator=self.generator)
        idx, self.order = self.order[:b], self.order[b:]
        return self.data[idx]

    def lr_fraction(self) -> float:
        return clock_cosine(self.step, self.clock / self.budget_s, self.recipe["warmup_steps"])

    def train_step(self, clock_s: float) -> float:
        """One optimizer step at the learning rate the training clock `clock_s` (seconds so far) sets."""
        self.clock = clock_s
        for group in self.opt.param_groups:
            group["lr"] = self.recipe["lr"] * self.lr_fraction()
        self.model.train()
        with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
            loss = self.loss(self.next_batch())
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe["grad_clip"])
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.ema_update()
        self.step += 1
        return loss.item()

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ema_update(self) -> None:
        raise NotImplementedError

    def ema_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the EMA weights (the snapshot)."""
        raise NotImplementedError

    def samplers(self) -> dict[str, int]:
        """Sampler label → network evaluations per sample."""
        raise NotImplementedError

    def sample(self, weights: dict[str, torch.Tensor], sampler: str, n: int, seed: int) -> torch.Tensor:
        """n images in [−1, 1] from the snapshot's weights; batch b's noise from seed + its first index."""
        raise NotImplementedError

    def sampling_autocast(self) -> Any:
        return torch.autocast("cpu", torch.bfloat16, enabled=self.autocast)


def ema_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def batches(n: int, batch_size: int) -> list[range]:
    return [range(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


def scored(judge_out: Any, reference: torch.Tensor, floor_fid: float, resamples: int = 20, seed: int = 0
           ) -> dict[str, float]:
    """fid_clf, recognizable, coverage and fid_ratio of judged samples, each with a standard error: the binomial one
    for recognizable, a bootstrap over the samples (`resamples` draws) for fid_clf and coverage."""
    probs, features = judge_out.probs, judge_out.features
    out = score(probs, features, reference)
    g = torch.Generator().manual_seed(seed)
    draws = [score(probs[i], features[i], reference)
             for i in (torch.randint(0, len(probs), (len(probs),), generator=g) for _ in range(resamples))]
    for key in ("fid_clf", "coverage"):
        out[f"{key}_se"] = float(torch.tensor([d[key] for d in draws]).std())
    p = out["recognizable"]
    out["recognizable_se"] = math.sqrt(p * (1 - p) / len(probs))
    out["fid_ratio"], out["fid_ratio_se"] = out["fid_clf"] / floor_fid, out["fid_clf_se"] / floor_fid
    return out
