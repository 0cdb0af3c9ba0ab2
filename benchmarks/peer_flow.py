"""Conditional flow matching as a peer: Meta's `flow_matching` library with ours' UNet, CPU-tuned.

The path is `AffineProbPath(CondOTScheduler())`: x_t = t·x₁ + (1 − t)·x₀ from noise x₀ (t = 0) to data x₁ (t = 1),
the network regresses the velocity x₁ − x₀ (Lipman et al. 2023; torchcfm's ConditionalFlowMatcher with σ = 0 is the
same objective) at t = sigmoid(n), n ~ N(0, 1): the logit-normal t of Stable Diffusion 3's rectified flows (Esser et
al. 2024), which the peer's own trials chose over t ~ U(0, 1) (`time_sampling`; docs/benchmark.md). The network is
the CPU profile's UNet, fed the float t ∈ [0, 1] directly; ours' batch, peak rate, warm-up and EMA, which its trials
kept (ddpm.train.EMA); bf16 autocast. Sampled with the library's `ODESolver` (torchdiffeq) on a uniform grid:
Euler, midpoint and RK4, each at the benchmark's network evaluations per sample.
A benchmark-only dependency: `pip install -e '.[bench]'`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.contender import TUNED, Peer, batches, ema_state
from ddpm.params import ParamError
from ddpm.samplers import image_generators, randn
from ddpm.train import EMA
from ddpm.unet import UNet

ORDER = {"euler": 1, "midpoint": 2, "rk4": 4}  # network evaluations per solver step
TIME_SAMPLING = ("uniform", "logit-normal")


def flow_matching_module() -> Any:
    try:
        import flow_matching.path
        import flow_matching.path.scheduler
        import flow_matching.solver
    except ImportError:
        raise RuntimeError("the benchmark's flow-matching peer needs flow_matching: pip install -e '.[bench]'") from None
    return flow_matching


class FlowUNet(UNet):
    """Ours' UNet fed a continuous time t ∈ [0, 1] (flow matching has no integer steps)."""

    def time_to_unit(self, t: torch.Tensor) -> torch.Tensor:
        return t.float()


class FlowMatchingTuned(Peer):
    # six 5-minute trials of its own (docs/benchmark.md) kept ours' batch, rate and EMA and chose logit-normal t
    label, tuning = "flow matching (ours' UNet), CPU-tuned", "6 trials of its own (docs/benchmark.md)"
    recipe = {**TUNED, "time_sampling": "logit-normal"}

    def __init__(self, model_params: dict[str, Any], data: torch.Tensor, budget_s: float, seed: int,
                 nfe: int = 100) -> None:
        super().__init__(data, budget_s, seed)
        if self.recipe["time_sampling"] not in TIME_SAMPLING:
            raise ParamError(f"flow-matching.time_sampling = {self.recipe['time_sampling']!r}: must be one of "
                             f"{', '.join(TIME_SAMPLING)}")
        fm = flow_matching_module()
        self.nfe, self.shape = nfe, tuple(data.shape[1:])
        self.model = FlowUNet.from_params(model_params, data.shape[1], T=1000)  # T is unused: t is already in [0, 1]
        self.path = fm.path.AffineProbPath(scheduler=fm.path.scheduler.CondOTScheduler())
        self.make_optimizer()
        self.ema = EMA(self.model, self.recipe["ema_decay"])

    def loss(self, x1: torch.Tensor) -> torch.Tensor:
        x0 = torch.randn(x1.shape, generator=self.generator)
        if self.recipe["time_sampling"] == "uniform":
            t = torch.rand(len(x1), generator=self.generator)
        else:
            t = torch.sigmoid(torch.randn(len(x1), generator=self.generator))
        sample = self.path.sample(x_0=x0, x_1=x1, t=t)
        return F.mse_loss(self.model(sample.x_t, sample.t).float(), sample.dx_t)

    def ema_update(self) -> None:
        self.ema.update_parameters(self.model)

    def ema_weights(self) -> dict[str, torch.Tensor]:
        return ema_state(self.ema.module)

    def samplers(self) -> dict[str, int]:
        return {f"{method} {self.nfe // k} steps": self.nfe for method, k in ORDER.items() if self.nfe % k == 0}

    @torch.no_grad()
    def sample(self, weights: dict[str, torch.Tensor], sampler: str, n: int, seed: int, batch_size: int = 250
               ) -> torch.Tensor:
        method, steps = sampler.split()[0], int(sampler.split()[1])
        model = FlowUNet(**self.model.config)
        model.load_state_dict(weights)
        model.eval()
        solver = flow_matching_module().solver.ODESolver(velocity_model=lambda x, t: model(x, t).float())
        grid, out = torch.linspace(0, 1, steps + 1), []
        for idx in batches(n, batch_size):
            x = randn((len(idx), *self.shape), image_generators(seed, idx, "cpu"), "cpu")
            with self.sampling_autocast():
                out.append(solver.sample(x_init=x, step_size=None, method=method, time_grid=grid).float().clamp(-1, 1))
        return torch.cat(out)
