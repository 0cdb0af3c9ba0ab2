"""Numerical checks of the closed forms, used by the tests and shown in the report."""
from __future__ import annotations

import math

import torch

from .diffusion import Diffusion


def brute_force_posterior(diffusion: Diffusion, x0: float, xt: float, t: int, n: int = 200_001) -> tuple[float, float]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), by quadrature on a 1-D grid.

    Bayes' rule with no closed form used: both factors are Gaussian densities evaluated
    pointwise, multiplied, normalized numerically. At t = 0 the posterior is the point x_0.
    """
    if t == 0:
        return x0, 0.0
    beta = diffusion.betas[t].item()
    ab_prev = diffusion.alphas_bar[t - 1].item()
    prior_mean, prior_var = math.sqrt(ab_prev) * x0, 1 - ab_prev  # q(x_{t-1} | x_0)
    lik_var = beta                                                  # q(x_t | x_{t-1}) = N(√α_t x_{t-1}, β_t)
    # a grid that spans both the prior's mode and the likelihood's, with 12 narrow σ on each side
    margin = 12 * math.sqrt(min(prior_var, lik_var / (1 - beta)))
    ends = (prior_mean, xt / math.sqrt(1 - beta))
    grid = torch.linspace(min(ends) - margin, max(ends) + margin, n, dtype=torch.float64)
    log_p = (-(grid - prior_mean) ** 2 / (2 * prior_var)
             - (xt - math.sqrt(1 - beta) * grid) ** 2 / (2 * lik_var))
    w = torch.exp(log_p - log_p.max())
    w = w / w.sum()
    mean = (w * grid).sum().item()
    return mean, (w * (grid - mean) ** 2).sum().item()


def posterior_table(diffusion: Diffusion, ts: list[int], x0: float = 0.6, xt: float = -0.3) -> list[dict[str, float]]:
    """Closed-form μ̃_t, β̃_t next to the brute-force posterior, at the given t."""
    rows = []
    for t in ts:
        if not 0 <= t < diffusion.T:
            raise ValueError(f"report.posterior_check_t: t = {t} is outside [0, T) = [0, {diffusion.T})")
        tt = torch.tensor([t])
        mean, var = diffusion.q_posterior(torch.tensor([[x0]], dtype=torch.float64),
                                          torch.tensor([[xt]], dtype=torch.float64), tt)
        bf_mean, bf_var = brute_force_posterior(diffusion, x0, xt, t)
        rows.append({"t": t, "mu_closed": mean.item(), "mu_bayes": bf_mean, "var_closed": var.item(),
                     "var_bayes": bf_var, "max_abs_diff": max(abs(mean.item() - bf_mean), abs(var.item() - bf_var))})
    return rows
