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


def test_dpm_solver_matches_diffusers_step_for_step():
    """On diffusers' own time grid, our DPM-Solver++(2M) step gives the same x as DPMSolverMultistepScheduler."""
    diffusers = pytest.importorskip("diffusers")
    d = Diffusion(linear_betas(1000))

    def eps(x, t):  # the exact ε of a Gaussian data law N(0.3, 0.2²): smooth, so the second-order term matters
        ab = d.alphas_bar[t].float().view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * 0.3) / (ab * 0.04 + 1 - ab)

    theirs = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                                                   beta_end=0.02, algorithm_type="dpmsolver++", solver_order=2,
                                                   lower_order_final=False)
    theirs.set_timesteps(20)
    grid = [int(t) for t in theirs.timesteps]
    x_theirs = x_ours = torch.randn(6, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    state = None
    for t, t_prev in zip(grid[:8], grid[1:9]):
        x_theirs = theirs.step(eps(x_theirs, torch.full((6,), t)), torch.tensor(t), x_theirs).prev_sample
        x_ours, var, state = SAMPLERS["dpm++2m"](d, x_ours, t, t_prev, eps(x_ours, torch.full((6,), t)), 0.0, False,
                                                 state)
        assert torch.allclose(x_ours, x_theirs, atol=1e-4) and not var.any(), t


def test_dpm_solver_first_step_is_ddim():
    """DPM-Solver++'s first-order step is DDIM with η = 0 (same x̂_0, same target time)."""
    d = Diffusion(linear_betas(100))
    x, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    dpm, _, state = SAMPLERS["dpm++2m"](d, x, 80, 40, eps, 0.0, True, None)
    ddim, _, _ = SAMPLERS["ddim"](d, x, 80, 40, eps, 0.0, True, None)
    assert torch.allclose(dpm, ddim, atol=1e-5) and state is not None


def test_v_prediction_is_consistent_through_the_sampler():
    """A v-model built from an ε-model (v = √ᾱ ε − √(1−ᾱ) x̂_0) samples the same images as the ε-model."""
    eps_d, v_d = Diffusion(linear_betas(50)), Diffusion(linear_betas(50), prediction="v")
    torch.manual_seed(0)
    w = torch.randn(1, 1, 4, 4)

    def eps_model(x, t):
        return torch.tanh(x * w + t.view(-1, 1, 1, 1).float() / 50)

    def v_model(x, t):
        ab = eps_d.alphas_bar[t].float().view(-1, 1, 1, 1)
        eps = eps_model(x, t)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0

    for sampler, steps in (("ddim", 10), ("dpm++2m", 10), ("ancestral", 50)):
        a = sample(eps_d, eps_model, 3, (1, 4, 4), sampler=sampler, steps=steps, eta=1.0, device="cpu",
                   generator=torch.Generator().manual_seed(1))
        b = sample(v_d, v_model, 3, (1, 4, 4), sampler=sampler, steps=steps, eta=1.0, device="cpu",
                   generator=torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, atol=1e-4), sampler


def test_a_sampler_added_to_the_library_is_accepted_by_params_and_runs_a_stage(tmp_path, monkeypatch):
    """params validates against samplers.SAMPLERS itself: a step function registered at run time is accepted in
    params.yaml and drives the sample stage, with no other edit (a params-side list of samplers would refuse it)."""
    import json
    import runpy
    from pathlib import Path
    from ddpm.params import for_profile, read_yaml
    from ddpm.pretrained import save_pretrained
    from tests.conftest import randomize, tiny_unet, write_yaml
    root = Path(__file__).resolve().parents[1]
    calls = []

    def toy(d, x, t, t_prev, eps, eta, clip, state):
        calls.append(t)
        return SAMPLERS["ddim"](d, x, t, t_prev, eps, eta, clip, state)

    monkeypatch.setitem(SAMPLERS, "toy", toy)
    p = read_yaml(root / "params.yaml")
    p["diffusion"]["T"] = 50
    p["sample"].update(sampler="toy", steps=5, n_grid=4, n_eval=4, batch_size=4, nproc=1, device="cpu",
                       autoguidance=0.0)
    write_yaml(p, tmp_path / "params.yaml")
    diffusion = for_profile(p)["diffusion"]
    save_pretrained(tmp_path / "data/mnist/model", randomize(tiny_unet(T=50)).eval(), diffusion,
                    sample_shape=(1, 28, 28))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(root / "stages/sample.py"))["main"]()
    info = json.loads((tmp_path / "data/mnist/samples/info.json").read_text())
    assert info["sampler"].startswith("toy, 5 steps") and len(calls) == 2 * 5  # the grid and the evaluation batch
