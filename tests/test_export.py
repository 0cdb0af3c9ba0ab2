"""`ddpm export --to diffusers`: diffusers loads the folder, predicts our ε̂, schedules our β_t and samples it."""
import pytest
import torch

from ddpm.cli import main
from ddpm.diffusion import Diffusion
from ddpm.export import diffusers_scheduler_config
from ddpm.pretrained import save_pretrained
from tests.conftest import randomize, tiny_unet

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("unet, diffusion", [
    ({}, {"schedule": "linear", "prediction": "eps"}),
    ({"patch_size": 2, "conditioning": "scale_shift"}, {"schedule": "cosine", "prediction": "v"}),
])
def test_diffusers_loads_the_export_and_predicts_our_noise(tmp_path, unet, diffusion):
    torch.manual_seed(0)
    model = randomize(tiny_unet(T=100, **unet)).eval()
    params = {"T": 100, "beta_start": 1e-4, "beta_end": 0.02, "weighting": "none", "snr_gamma": 5.0, **diffusion}
    save_pretrained(tmp_path / "model", model, params, sample_shape=(1, 28, 28))
    assert main(["export", str(tmp_path / "model"), "--to", "diffusers", str(tmp_path / "out")]) == 0
    pipe = diffusers.DDPMPipeline.from_pretrained(str(tmp_path / "out"))
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 17, 63, 99])
    with torch.no_grad():
        assert (pipe.unet(x, t).sample - model(x, t)).abs().max() < 1e-5
    ours = Diffusion.from_params(params)
    assert torch.allclose(pipe.scheduler.betas.double(), ours.betas, atol=1e-7)
    assert pipe.scheduler.config.prediction_type == diffusers_scheduler_config(params)["prediction_type"]
    images = pipe(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
