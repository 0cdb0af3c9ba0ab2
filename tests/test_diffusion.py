import math

import pytest
import torch

from ddpm import Diffusion, linear_betas
from ddpm.checks import brute_force_posterior


def test_q_sample_matches_the_marginal_by_monte_carlo(diffusion):
    torch.manual_seed(0)
    n, x0 = 200_000, 0.7
    for t in (0, 30, 99):
        xt = diffusion.q_sample(torch.full((n, 1, 1, 1), x0), torch.full((n,), t))
        ab = diffusion.alphas_bar[t].item()
        se = math.sqrt((1 - ab) / n)
        assert abs(xt.mean().item() - math.sqrt(ab) * x0) < 5 * se + 1e-6
        assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_q_sample_is_a_chain_of_forward_steps():
    """Running x_t = √α_t x_{t-1} + √β_t z step by step gives the law that q_sample draws from in one jump."""
    torch.manual_seed(1)
    d = Diffusion(linear_betas(20, 0.01, 0.2))
    n = 200_000
    x = torch.full((n, 1, 1, 1), -0.5, dtype=torch.float64)
    for t in range(10):
        x = d.alphas[t].sqrt() * x + d.betas[t].sqrt() * torch.randn_like(x)
    jump = d.q_sample(torch.full((n, 1, 1, 1), -0.5, dtype=torch.float64), torch.full((n,), 9))
    assert x.mean().item() == pytest.approx(jump.mean().item(), abs=0.01)
    assert x.var().item() == pytest.approx(jump.var().item(), rel=0.02)


@pytest.mark.parametrize("t", [0, 1, 5, 50, 99])
def test_q_posterior_equals_bayes_rule_by_quadrature(diffusion, t):
    x0, xt = 0.4, -0.8
    mean, var = diffusion.q_posterior(torch.tensor([[x0]], dtype=torch.float64),
                                      torch.tensor([[xt]], dtype=torch.float64), torch.tensor([t]))
    bf_mean, bf_var = brute_force_posterior(diffusion, x0, xt, t)
    assert mean.item() == pytest.approx(bf_mean, abs=1e-9)
    assert var.item() == pytest.approx(bf_var, rel=1e-6, abs=1e-15)


def test_q_posterior_by_monte_carlo_on_the_joint():
    """Sample (x_{t-1}, x_t) from the forward process, keep pairs with x_t near a value: their x_{t-1} follows μ̃, β̃."""
    torch.manual_seed(2)
    d = Diffusion(linear_betas(10, 0.05, 0.3))
    t, x0, target, n = 5, 0.3, 0.1, 4_000_000
    prev = d.alphas_bar[t - 1].sqrt() * x0 + (1 - d.alphas_bar[t - 1]).sqrt() * torch.randn(n, dtype=torch.float64)
    xt = d.alphas[t].sqrt() * prev + d.betas[t].sqrt() * torch.randn(n, dtype=torch.float64)
    kept = prev[(xt - target).abs() < 0.01]
    mean, var = d.q_posterior(torch.tensor([x0], dtype=torch.float64), torch.tensor([target], dtype=torch.float64),
                              torch.tensor([t]))
    assert len(kept) > 5000
    assert kept.mean().item() == pytest.approx(mean.item(), abs=4 * math.sqrt(var.item() / len(kept)) + 1e-3)
    assert kept.var().item() == pytest.approx(var.item(), rel=0.05)


def test_posterior_at_t0_is_the_point_x0(diffusion):
    x0, xt = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    mean, var = diffusion.q_posterior(x0, xt, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(mean, x0, atol=1e-6) and torch.all(var == 0)


def test_predict_x0_inverts_q_sample(diffusion):
    x0 = torch.rand(8, 1, 6, 6) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.randint(0, 100, (8,))
    xt = diffusion.q_sample(x0, t, noise)
    assert torch.allclose(diffusion.predict_x0_from_eps(xt, t, noise, clip=False), x0, atol=1e-4)
    assert torch.allclose(diffusion.predict_eps_from_x0(xt, t, x0), noise, atol=1e-3)
    wild = diffusion.predict_x0_from_eps(xt, t, -5 * noise)
    assert wild.min() >= -1 and wild.max() <= 1  # clip=True keeps x̂_0 in the data range


def test_q_reverse_is_the_posterior_at_the_predicted_x0(diffusion):
    xt, eps, t = torch.randn(4, 1, 5, 5), torch.randn(4, 1, 5, 5), torch.tensor([3, 20, 60, 99])
    mean, var = diffusion.p_mean_variance(xt, t, eps, clip=False)
    ref_mean, ref_var = diffusion.q_posterior(diffusion.predict_x0_from_eps(xt, t, eps, clip=False), xt, t)
    assert torch.allclose(mean, ref_mean) and torch.allclose(var, ref_var)
    # without clipping it is the ε-form μ̃ = (x_t − β_t/√(1−ᾱ_t) ε)/√α_t of Ho et al. (eq. 11)
    b, a, ab = (diffusion.betas[t].float().view(-1, 1, 1, 1), diffusion.alphas[t].float().view(-1, 1, 1, 1),
                diffusion.alphas_bar[t].float().view(-1, 1, 1, 1))
    assert torch.allclose(mean, (xt - b / (1 - ab).sqrt() * eps) / a.sqrt(), atol=1e-4)


def test_float_timesteps_are_refused(diffusion):
    with pytest.raises(TypeError, match="integers"):
        diffusion.q_sample(torch.zeros(2, 1, 2, 2), torch.tensor([0.5, 0.1]))


def test_timesteps_for_ddim(diffusion):
    ts = diffusion.timesteps(10)
    assert ts[0] == 99 and ts[-1] == 0 and len(ts) == 10 and ts == sorted(ts, reverse=True)
    assert diffusion.timesteps() == list(range(99, -1, -1))
    with pytest.raises(ValueError, match="steps = 0"):
        diffusion.timesteps(0)


def test_loss_decreases_when_overfitting_a_tiny_batch():
    from tests.conftest import tiny_unet

    torch.manual_seed(0)
    d = Diffusion(linear_betas(100))
    model = tiny_unet()
    x0 = torch.rand(8, 1, 8, 8).round() * 2 - 1
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    t, noise = torch.randint(0, 100, (8,)), torch.randn_like(x0)
    first = d.loss(model, x0, t, noise).item()
    for _ in range(150):
        loss = d.loss(model, x0, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_v_target_and_min_snr_weights():
    d = Diffusion(linear_betas(100), prediction="v", weighting="min_snr", snr_gamma=5.0)
    x0, noise, t = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3), torch.tensor([0, 10, 50, 99])
    xt = d.q_sample(x0, t, noise)
    v = d.v_target(x0, t, noise)
    assert torch.allclose(d.eps_from_output(xt, t, v), noise, atol=1e-5)  # ε recovered from the true v
    snr = d.alphas_bar[t] / (1 - d.alphas_bar[t])
    assert torch.allclose(d.loss_weights(t), (snr.clamp(max=5) / (snr + 1)).float())
    eps_d = Diffusion(linear_betas(100), weighting="min_snr", snr_gamma=5.0)
    w = eps_d.loss_weights(t)
    assert torch.allclose(w, (snr.clamp(max=5) / snr).float()) and w[-1] == 1.0  # noisy steps keep weight 1
    with pytest.raises(ValueError, match="prediction = 'x'"):
        Diffusion(linear_betas(10), prediction="x")


def test_the_loss_of_a_perfect_v_model_is_zero():
    d = Diffusion(linear_betas(100), prediction="v", weighting="min_snr")
    x0 = torch.rand(8, 1, 4, 4) * 2 - 1
    t, noise = torch.randint(0, 100, (8,)), torch.randn(8, 1, 4, 4)
    perfect = lambda xt, tt: d.v_target(x0, tt, noise)  # noqa: E731
    assert d.loss(perfect, x0, t=t, noise=noise).item() < 1e-10


@pytest.mark.parametrize("old, new", [("q_reverse", "p_mean_variance"), ("ddim_reverse", "ddim_mean_variance"),
                                      ("predict_x0", "predict_x0_from_eps"), ("predict_eps", "predict_eps_from_x0")])
def test_0_7_names_still_work_and_say_what_replaced_them(old, new):
    """The naming pass after improved-diffusion keeps 0.7's names for one release, each warning with its new name."""
    d = Diffusion(linear_betas(100))
    x, t, e = torch.randn(2, 1, 4, 4), torch.tensor([3, 60]), torch.randn(2, 1, 4, 4)
    args = (x, t, torch.tensor([1, 40]), e) if old == "ddim_reverse" else (x, t, e)
    with pytest.warns(DeprecationWarning, match=new):
        got = getattr(d, old)(*args)
    want = getattr(d, new)(*args)
    assert all(torch.equal(a, b) for a, b in zip(got if isinstance(got, tuple) else (got,),
                                                 want if isinstance(want, tuple) else (want,)))
