"""The sampling loop and the sampler steps (ddpm/samplers.py)."""
import pytest
import torch

from ddpm import Diffusion, complete_image, linear_betas, sample
from ddpm.completion import half_mask
from ddpm.samplers import SAMPLERS, check_sampler, run_chain


def test_ddim_eta1_over_all_steps_is_the_ancestral_sampler(diffusion, random_unet):
    a = sample(diffusion, random_unet, 6, (1, 28, 28), generator=torch.Generator().manual_seed(0))
    b = sample(diffusion, random_unet, 6, (1, 28, 28), sampler="ddim", steps=100, eta=1.0,
                         generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-4)
    c = sample(diffusion, random_unet, 6, (1, 28, 28), sampler="ddim", steps=100, eta=0.0,
                         generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, c, atol=1e-2)  # η = 0 is a different (deterministic) sampler


def test_ddim_eta1_matches_ancestral_in_distribution_with_a_known_score():
    """With the exact ε of a Gaussian data law N(m, s²), both samplers recover the data law (no network)."""
    d = Diffusion(linear_betas(200, 1e-3, 0.05))
    m, s = 0.3, 0.2

    def exact_eps(x, t):  # x_t ~ N(√ᾱ m, ᾱ s² + 1 − ᾱ): ε = √(1−ᾱ)(x − √ᾱ m)/(ᾱ s² + 1 − ᾱ)
        ab = d.alphas_bar[t].float().view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * s**2 + 1 - ab)

    def draw(seed, **kw):
        return sample(d, exact_eps, 40_000, (1, 1, 1), clip=False, generator=torch.Generator().manual_seed(seed),
                        device="cpu", **kw)

    ancestral, ddim1 = draw(3), draw(4, sampler="ddim", steps=200, eta=1.0)
    se = s / (2 * 40_000) ** 0.5
    assert ancestral.mean().item() == pytest.approx(ddim1.mean().item(), abs=5 * s / 200)
    assert ancestral.std().item() == pytest.approx(ddim1.std().item(), abs=6 * se)
    for x in (ancestral, ddim1, draw(5, sampler="ddim", steps=200, eta=0.0)):
        # the data law is recovered up to the discretization of the reverse process
        assert x.mean().item() == pytest.approx(m, abs=0.01)
        assert x.std().item() == pytest.approx(s, rel=0.1)
    # DDIM (η = 0) converges to the data law as its step count grows
    errors = [abs(draw(6, sampler="ddim", steps=k).std().item() - s) for k in (20, 50, 200)]
    assert errors[0] > errors[1] > errors[2]


def test_sample_shape_range_and_determinism(diffusion, random_unet):
    a = sample(diffusion, random_unet, 3, (1, 28, 28), sampler="ddim", steps=10, generator=torch.Generator().manual_seed(5))
    b = sample(diffusion, random_unet, 3, (1, 28, 28), sampler="ddim", steps=10, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)


def test_ancestral_sampler_needs_all_steps_and_unknown_samplers_are_named(diffusion, random_unet):
    with pytest.raises(ValueError, match="the ancestral sampler visits all T = 100 steps"):
        sample(diffusion, random_unet, 1, (1, 28, 28), steps=10)
    with pytest.raises(ValueError, match="sampler = 'euler'"):
        check_sampler("euler", 10, 100)
    with pytest.raises(ValueError, match="eta = -1"):
        sample(diffusion, random_unet, 1, (1, 28, 28), sampler="ddim", steps=5, eta=-1)


def test_a_sampler_added_once_works_for_plain_and_guided_sampling(diffusion, random_unet, monkeypatch):
    """Register a new step function: plain sampling and completion both run it, through the one loop."""
    calls = []

    def halfway(d, x, t, t_prev, eps, eta, clip, state):
        calls.append(t)
        return SAMPLERS["ddim"](d, x, t, t_prev, eps, eta, clip, state)

    monkeypatch.setitem(SAMPLERS, "halfway", halfway)
    x = sample(diffusion, random_unet, 2, (1, 28, 28), sampler="halfway", steps=4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(2, 1, 28, 28)
    c = complete_image(diffusion, random_unet, y, half_mask(y.shape, "top"), 0.1, "mean", sampler="halfway", steps=4,
                       generator=torch.Generator().manual_seed(0))
    assert x.shape == c.shape == (2, 1, 28, 28) and len(calls) == 8


def test_run_chain_from_given_noise_is_sample(diffusion, random_unet):
    g = torch.Generator().manual_seed(4)
    a = sample(diffusion, random_unet, 2, (1, 28, 28), sampler="ddim", steps=6, eta=1.0, generator=g)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 1, 28, 28, generator=g)
    assert torch.equal(run_chain(diffusion, random_unet, x, sampler="ddim", steps=6, eta=1.0, generator=g), a)
