import math

import pytest
import torch

from ddpm import Diffusion, cosine_betas, linear_betas, named_betas


def test_linear_betas_endpoints_and_dtype():
    b = linear_betas(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    assert torch.all(b[1:] > b[:-1])


def test_alphas_bar_is_the_running_product():
    d = Diffusion(linear_betas(50, 1e-3, 0.3))
    prod = 1.0
    for t in range(50):
        prod *= 1 - (1e-3 + (0.3 - 1e-3) * t / 49)
        assert d.alphas_bar[t].item() == pytest.approx(prod, rel=1e-12)
    assert torch.allclose(d.alphas, 1 - d.betas)
    # the spec's schedule ends almost at pure noise: ᾱ_{T-1} = 4.04e-5
    assert Diffusion(linear_betas(1000)).alphas_bar[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)


def test_cosine_alphas_bar_follows_the_cosine():
    T, s = 1000, 0.008
    d = Diffusion(cosine_betas(T))
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert d.alphas_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)


@pytest.mark.parametrize("args", [dict(T=1), dict(T=10, beta_start=0.02, beta_end=0.01), dict(T=10, beta_end=1.5)])
def test_bad_schedules_raise_naming_the_argument(args):
    with pytest.raises(ValueError, match="T =|beta_start"):
        linear_betas(**args)


def test_unknown_schedule_name():
    with pytest.raises(ValueError, match="schedule = 'quadratic'"):
        named_betas("quadratic", 10)
