import pytest
import torch

from ddpm import Diffusion, linear_betas
from ddpm.guidance import (completion_quality, grad_wrt_mean, grad_wrt_xt, half_mask, half_tasks, masked_sq_error)
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
            return masked_sq_error(d.predict_x0(x_, t, model(x_, t), clip=False), y, mask).item()

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
    mean, var = d.reverse(x, t, t_prev, eps, ancestral=ancestral, eta=1.0, clip=True)
    x0 = d.predict_x0(x, tt, eps, clip=True)
    grad = grad_wrt_mean(d, mean, var, t_prev, d.predict_eps(x, tt, x0), y, mask)
    ab = d.alphas_bar[t_prev].item() if t_prev >= 0 else 1.0
    assert torch.allclose(grad, 2 * mask * (x0 - y) / ab**0.5, atol=1e-8)


def test_a_saturated_x0_still_pulls_toward_y(setup):
    """With clip=True the loss sees the clipped x̂_0, but its gradient passes straight through the clip."""
    d, model, y, mask = setup
    x, t = 50 * torch.ones(2, 1, 28, 28, dtype=torch.float64), torch.tensor([10, 10])  # x̂_0 ≫ 1 everywhere
    assert d.predict_x0(x, t, model(x, t), clip=False).min() > 1
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
    run = lambda scale: d.complete_image(gaussian_eps(d, 0.5), y, mask, scale=scale, wrt=wrt, steps=20,  # noqa: E731
                                         eta=1.0, generator=torch.Generator().manual_seed(0))
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
    batch = d.complete_image(model, y * mask, mask, 0.2, wrt, steps=8, eta=1.0, generator=gens())
    for i, g in enumerate(gens()):
        one = d.complete_image(model, (y * mask)[i:i + 1], mask[i:i + 1], 0.2, wrt, steps=8, eta=1.0, generator=[g])
        assert torch.allclose(batch[i:i + 1], one, atol=1e-5), i


def test_full_chain_and_replacement_run(setup):
    d, model, y, mask = setup
    model = model.float()
    y, mask = y.float(), mask.float()
    x = d.complete_image(model, y, mask, 0.1, "mean", generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape and x.min() >= -1 and x.max() <= 1
    r = d.complete_image(model, y, mask, guidance="replace", steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(r * mask, y * mask, atol=1e-6)  # replacement keeps the given pixels exactly


def test_trivial_masks(setup):
    d, model, y, _ = setup
    model, y = model.float(), y.float()
    assert torch.equal(d.complete_image(model, y, torch.ones(1, 1, 28, 28), 1.0), y)
    hidden_all = d.complete_image(model, y, torch.zeros(1, 1, 28, 28), 1.0, steps=5,
                                  generator=torch.Generator().manual_seed(3))
    sampled = d.sample(model, 2, (1, 28, 28), steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(hidden_all, sampled, atol=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    (dict(ymask=torch.ones(1, 1, 14, 28)), "ymask: shape"),
    (dict(ymask=torch.full((1, 1, 28, 28), 0.5)), "ymask: must be binary"),
    (dict(y=torch.full((1, 1, 28, 28), 3.0)), r"y: pixels must lie in \[-1, 1\]"),
    (dict(scale=-1.0), "scale = -1.0"),
    (dict(wrt="x0"), "wrt = 'x0'"),
])
def test_bad_inputs_name_the_argument(kwargs, words):
    d, model = Diffusion(linear_betas(10)), tiny_unet(T=10)
    args = dict(y=torch.zeros(1, 1, 28, 28), ymask=half_mask((28, 28), "top"), scale=1.0, wrt="mean")
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        d.complete_image(model, **args)


def test_half_tasks_and_quality():
    images = torch.rand(10, 1, 28, 28) * 2 - 1
    idx, y, masks = half_tasks(images, 4, seed=0)
    assert len(idx) == 8 and torch.equal(idx[:4], idx[4:])
    assert torch.all(y[:4, :, 14:] == 0) and torch.all(y[4:, :, :14] == 0)
    perfect = images[idx][:, None].repeat(1, 3, 1, 1, 1)
    q = completion_quality(perfect, images[idx], masks)
    assert q["mse_visible"] == 0 and q["mse_hidden"] == 0 and q["diversity"] == 0
    noisy = perfect + 0.1 * torch.randn_like(perfect)
    q = completion_quality(noisy, images[idx], masks)
    assert q["mse_visible"] == pytest.approx(0.01, rel=0.1) and q["diversity"] == pytest.approx(0.1 * 2**0.5, rel=0.1)
    colour = torch.rand(4, 3, 3, 8, 8)  # RMS difference per pixel does not grow with the channel count
    q1 = completion_quality(colour[:, :, :1], colour[:, 0, :1], torch.zeros(4, 1, 8, 8))
    q3 = completion_quality(colour, colour[:, 0], torch.zeros(4, 1, 8, 8))
    assert q3["diversity"] == pytest.approx(q1["diversity"], rel=0.15)
