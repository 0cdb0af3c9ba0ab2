"""ddpm/deprecation.py: 0.7's names still work for one release, each warning with the name that replaced it."""
import pytest
import torch

import ddpm.context
import ddpm.guidance
import ddpm.labels
import ddpm.samplers
from ddpm.diffusion import Diffusion
from ddpm.samplers import sample
from ddpm.schedule import linear_betas
from tests.conftest import randomize, tiny_unet


@pytest.mark.parametrize("module, old, new", [
    (ddpm.samplers, "Guide", ddpm.samplers.StepHook), (ddpm.samplers, "predict_noise", ddpm.samplers.model_eps),
    (ddpm.guidance, "GradientGuide", ddpm.guidance.GradientHook), (ddpm.guidance, "ROUTES", ddpm.guidance.WRT),
    (ddpm.guidance, "ReplacementGuide", ddpm.guidance.ReplacementHook), (ddpm.guidance, "GUIDANCES", ddpm.guidance.METHODS),
    (ddpm.guidance, "ProjectedGradientGuide", ddpm.guidance.ProjectedGradientHook),
    (ddpm.context, "digit_context", ddpm.labels.digit_context),
    (ddpm.context, "parse_digit_prompt", ddpm.labels.parse_digit_prompt)])
def test_an_old_module_name_is_its_new_one_with_a_warning(module, old, new):
    with pytest.warns(DeprecationWarning, match=rf"{module.__name__}\.{old} is deprecated .* use "):
        assert getattr(module, old) is new
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        getattr(module, "nonexistent")


def test_old_keyword_arguments_and_attributes():
    d, model = Diffusion(linear_betas(100)), randomize(tiny_unet()).eval()
    with pytest.warns(DeprecationWarning, match=r"UNet\(T=…\)"):
        old = tiny_unet(T=None, num_timesteps=100)
    assert old.T == 100
    with pytest.warns(DeprecationWarning, match="UNet.T"):
        assert old.num_timesteps == 100

    class Counting:
        def __init__(self):
            self.calls = 0

        def predict(self, model, x, t):
            self.calls += 1
            return ddpm.samplers.model_eps(d, model, x, t)

        def correct(self, x_prev, step, generator):
            return x_prev

    hook = Counting()
    with pytest.warns(DeprecationWarning, match=r"run_chain\(hook=…\)"):
        sample(d, model, 1, (1, 28, 28), sampler="ddim", steps=3, guide=hook, generator=torch.Generator().manual_seed(0))
    assert hook.calls == 3
