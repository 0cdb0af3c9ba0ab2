import pytest
import torch
from torch import nn

from ddpm import Diffusion, complete_image, linear_betas, sample
from ddpm.completion import half_mask
from ddpm.labels import digit_context
from ddpm.guidance import (AutoGuidance, ClassifierFreeGuidance, context_dropout, get_context_mask, grad_wrt_mean,
                           grad_wrt_xt, masked_sq_error)
from ddpm.samplers import SAMPLERS
from tests.conftest import randomize, tiny_unet


@pytest.fixture
def setup():
    torch.manual_seed(0)
    d = Diffusion(linear_betas(100))
    model = randomize(tiny_unet()).double().eval()
    y = (torch.rand(2, 1, 28, 28, dtype=torch.float64) * 1.6 - 0.8)
    mask = half_mask(y.shape, "bottom").double()
    return d, model, y * mask, mask


def finite_difference(f, x, probes=6, h=1e-5):
    """Directional derivatives of f at x along random directions."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(probes):
        v = torch.randn(x.shape, generator=g, dtype=x.dtype)
        out.append(((f(x + h * v) - f(x - h * v)) / (2 * h), v))
    return out


def test_gradient_through_the_unet_matches_finite_differences(setup):
    d, model, y, mask = setup
    x, t = torch.randn(2, 1, 28, 28, dtype=torch.float64), torch.tensor([40, 40])

    def loss(x_):
        with torch.no_grad():
            return masked_sq_error(d.predict_x0_from_eps(x_, t, model(x_, t), clip=False), y, mask).item()

    _, grad = grad_wrt_xt(d, model, x, t, y, mask, clip=False)
    for fd, v in finite_difference(loss, x):
        assert (grad * v).sum().item() == pytest.approx(fd, rel=1e-4, abs=1e-6)


def test_gradient_wrt_the_mean_matches_finite_differences(setup):
    d, _, y, mask = setup
    mean, eps = torch.randn(2, 1, 28, 28, dtype=torch.float64), torch.randn(2, 1, 28, 28, dtype=torch.float64)
    t_prev, var = 30, torch.full((2, 1, 28, 28), 0.01, dtype=torch.float64)
    ab = d.alphas_bar[t_prev].item()

    def loss(m):
        return masked_sq_error((m - (1 - ab - var).sqrt() * eps) / ab**0.5, y, mask).item()

    grad = grad_wrt_mean(d, mean, var, t_prev, eps, y, mask)
    for fd, v in finite_difference(loss, mean):
        assert (grad * v).sum().item() == pytest.approx(fd, rel=1e-6, abs=1e-8)
    assert torch.all(grad[mask.expand_as(grad) == 0] == 0)  # hidden pixels get no direct pull


@pytest.mark.parametrize("ancestral, t, t_prev", [(True, 40, 39), (False, 40, 20), (False, 5, -1)])
def test_the_mean_route_differentiates_the_steps_own_x0(setup, ancestral, t, t_prev):
    """x̂_0(μ) inverts the reverse step's mean, so the loss is taken at the x̂_0 the sampler used."""
    d, model, y, mask = setup
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64) * 2
    tt = torch.full((2,), t)
    eps = model(x, tt).detach()
    mean, var, _ = SAMPLERS["ancestral" if ancestral else "ddim"](d, x, t, t_prev, eps, 1.0, True, None)
    x0 = d.predict_x0_from_eps(x, tt, eps, clip=True)
    grad = grad_wrt_mean(d, mean, var, t_prev, d.predict_eps_from_x0(x, tt, x0), y, mask)
    ab = d.alphas_bar[t_prev].item() if t_prev >= 0 else 1.0
    assert torch.allclose(grad, 2 * mask * (x0 - y) / ab**0.5, atol=1e-8)


def test_a_saturated_x0_still_pulls_toward_y(setup):
    """With clip=True the loss sees the clipped x̂_0, but its gradient passes straight through the clip."""
    d, model, y, mask = setup
    x, t = 50 * torch.ones(2, 1, 28, 28, dtype=torch.float64), torch.tensor([10, 10])  # x̂_0 ≫ 1 everywhere
    assert d.predict_x0_from_eps(x, t, model(x, t), clip=False).min() > 1
    _, grad = grad_wrt_xt(d, model, x, t, y, mask, clip=True)
    assert grad[mask.expand_as(grad) == 1].abs().min() > 0


def gaussian_eps(d: Diffusion, std: float):
    """The exact ε(x_t, t) when every pixel of x_0 is N(0, std²): a differentiable stand-in for a trained UNet."""
    def eps(x, t):
        ab = d.alphas_bar[t].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * x / (ab * std**2 + 1 - ab)
    return eps


@pytest.mark.parametrize("wrt", ["xt", "mean"])
def test_visible_pixels_end_close_to_y(wrt):
    torch.manual_seed(0)
    d = Diffusion(linear_betas(100))
    y_full = (torch.rand(3, 1, 28, 28) * 2 - 1) * 0.8
    mask = half_mask(y_full.shape, "top")
    y = y_full * mask
    run = lambda scale: complete_image(d, gaussian_eps(d, 0.5), y, mask, scale=scale, wrt=wrt, sampler="ddim",  # noqa: E731
                                       steps=20, eta=1.0, generator=torch.Generator().manual_seed(0))
    guided, unguided = run(0.3), run(0.0)
    vis = mask.expand_as(guided) == 1
    err, err0 = (guided - y)[vis].abs().mean().item(), (unguided - y)[vis].abs().mean().item()
    assert err < 0.05 and err < 0.15 * err0, (err, err0)


@pytest.mark.parametrize("wrt", ["xt", "mean"])
def test_a_batch_equals_single_images_with_the_same_noise(wrt):
    torch.manual_seed(0)
    d = Diffusion(linear_betas(100))
    model = randomize(tiny_unet()).eval()
    y = torch.rand(3, 1, 28, 28) * 2 - 1
    mask = torch.cat([half_mask(y.shape, "top"), half_mask(y.shape, "bottom"), half_mask(y.shape, "top")])
    gens = lambda: [torch.Generator().manual_seed(s) for s in (11, 12, 13)]  # noqa: E731
    batch = complete_image(d, model, y * mask, mask, 0.2, wrt, sampler="ddim", steps=8, eta=1.0, generator=gens())
    for i, g in enumerate(gens()):
        one = complete_image(d, model, (y * mask)[i:i + 1], mask[i:i + 1], 0.2, wrt, sampler="ddim", steps=8, eta=1.0,
                             generator=[g])
        assert torch.allclose(batch[i:i + 1], one, atol=1e-5), i


def test_full_chain_and_replacement_run(setup):
    d, model, y, mask = setup
    model = model.float()
    y, mask = y.float(), mask.float()
    x = complete_image(d, model, y, mask, 0.1, "mean", generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape and x.min() >= -1 and x.max() <= 1
    r = complete_image(d, model, y, mask, method="replace", sampler="ddim", steps=10,
                       generator=torch.Generator().manual_seed(0))
    assert torch.allclose(r * mask, y * mask, atol=1e-6)  # replacement keeps the given pixels exactly


def test_mcg_is_replacement_at_scale_0_and_moves_the_hidden_half_beyond(setup):
    """method="mcg": the x_t gradient step, then replacement: the given pixels end equal to y at every scale; at
    scale 0 it is the replacement baseline draw for draw, and a positive scale changes the hidden half."""
    d, model, y, mask = setup
    model, y, mask = model.float(), y.float(), mask.float()
    run = lambda method, scale: complete_image(d, model, y, mask, scale, "xt", method=method,  # noqa: E731
                                                 sampler="ddim", steps=10, eta=1.0,
                                                 generator=torch.Generator().manual_seed(0))
    replaced, mcg0, mcg = run("replace", 0.0), run("mcg", 0.0), run("mcg", 0.5)
    assert torch.equal(mcg0, replaced)
    assert torch.allclose(mcg * mask, y * mask, atol=1e-6)
    assert ((mcg - replaced) * (1 - mask)).abs().max() > 1e-3


def test_trivial_masks(setup):
    d, model, y, _ = setup
    model, y = model.float(), y.float()
    assert torch.equal(complete_image(d, model, y, torch.ones(1, 1, 28, 28), 1.0), y)
    hidden_all = complete_image(d, model, y, torch.zeros(1, 1, 28, 28), 1.0, sampler="ddim", steps=5,
                                generator=torch.Generator().manual_seed(3))
    sampled = sample(d, model, 2, (1, 28, 28), sampler="ddim", steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(hidden_all, sampled, atol=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    (dict(ymask=torch.ones(1, 1, 14, 28)), "ymask: shape"),
    (dict(ymask=torch.full((1, 1, 28, 28), 0.5)), "ymask: must be binary"),
    (dict(y=torch.full((1, 1, 28, 28), 3.0)), r"y: pixels must lie in \[-1, 1\]"),
    (dict(scale=-1.0), "scale = -1.0"),
    (dict(wrt="x0"), "wrt = 'x0'"),
    (dict(method="mcg"), "wrt = 'mean': method 'mcg' needs wrt='xt'"),
    (dict(method="both"), "method = 'both'"),
])
def test_bad_inputs_name_the_argument(kwargs, words):
    d, model = Diffusion(linear_betas(10)), tiny_unet(T=10)
    args = dict(y=torch.zeros(1, 1, 28, 28), ymask=half_mask((28, 28), "top"), scale=1.0, wrt="mean")
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        complete_image(d, model, **args)


# -- classifier-free guidance ------------------------------------------------------------------------------------
@pytest.fixture
def cond_unet():
    torch.manual_seed(0)
    return randomize(tiny_unet(context_dim=10)).eval()


def test_context_mask_drops_the_expected_share():
    mask = get_context_mask(100_000, 0.15, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (100_000, 1) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert (mask == 0).float().mean().item() == pytest.approx(0.15, abs=0.005)
    assert get_context_mask(10, 0.0).all() and not get_context_mask(10, 1.0).any()
    with pytest.raises(ValueError, match="p_uncond = 1.5"):
        get_context_mask(3, 1.5)
    c = torch.ones(1000, 10)
    dropped = context_dropout(0.5)(c)
    rows = dropped.sum(1)
    assert set(rows.unique().tolist()) <= {0.0, 10.0} and 350 < (rows == 0).sum() < 650


def test_w0_is_the_conditional_prediction(cond_unet):
    x, t, c = torch.randn(4, 1, 28, 28), torch.tensor([5, 50, 70, 99]), digit_context([1, 2, 3, 4])
    assert torch.allclose(ClassifierFreeGuidance(cond_unet, c, 0.0)(x, t), cond_unet(x, t, context=c), atol=1e-6)


def test_guidance_combines_the_two_predictions_in_one_batch(cond_unet):
    x, t, c = torch.randn(3, 1, 28, 28), torch.tensor([5, 50, 99]), digit_context([7, 0, 3])
    cond, uncond = cond_unet(x, t, context=c), cond_unet(x, t, context=torch.zeros_like(c))
    got = ClassifierFreeGuidance(cond_unet, c, 2.5)(x, t)
    # one batch of 6 rounds differently from two of 3 (about 2e-6 here on an AVX-512 EPYC), and (1 + w)·a − w·b
    # multiplies that by up to 1 + 2w: the tolerance grows with w
    assert torch.allclose(got, 3.5 * cond - 2.5 * uncond, atol=5e-6 * (1 + 2 * 2.5))
    # with the context masked out, every w gives the unconditional prediction
    masked = c * get_context_mask(3, 1.0)
    assert torch.allclose(ClassifierFreeGuidance(cond_unet, masked, 4.0)(x, t), uncond, atol=5e-6 * (1 + 2 * 4.0))
    with pytest.raises(ValueError, match="guidance = -1"):
        ClassifierFreeGuidance(cond_unet, c, -1)


def test_guided_sampling_gives_one_image_per_context_row(cond_unet):
    d = Diffusion(linear_betas(100))
    guided = ClassifierFreeGuidance(cond_unet, digit_context([7, 3, 9]), 2.0)
    x = sample(d, guided, 3, (1, 28, 28), sampler="ddim", steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28)


class Unusable(nn.Module):
    def forward(self, *args, **kwargs):
        raise AssertionError("called")


def test_autoguidance_extrapolates_away_from_the_bad_model():
    """ε̃ = (1 + w)·ε_good − w·ε_bad; w = 0 is the good model alone (the bad one is not even called)."""
    good, bad = randomize(tiny_unet()), randomize(tiny_unet(channels=16, groups=8))
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 50, 99])
    with torch.no_grad():
        assert not torch.allclose(good(x, t), bad(x, t), atol=1e-3)
        assert torch.allclose(AutoGuidance(good, bad, 2.0)(x, t), 3 * good(x, t) - 2 * bad(x, t), atol=1e-5)
        assert torch.equal(AutoGuidance(good, Unusable(), 0.0)(x, t), good(x, t))
    with pytest.raises(ValueError, match="autoguidance"):
        AutoGuidance(good, bad, -1.0)
