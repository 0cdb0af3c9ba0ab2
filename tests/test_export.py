"""`ddpm export --to diffusers`: diffusers loads the folder, predicts our ε̂, schedules our β_t and samples it — the
very images our ancestral sampler draws from the same seed, so the judge's verdict on ours holds for its pipeline."""
import numpy as np
import pytest
import torch

from ddpm.cli import main
from ddpm.diffusion import Diffusion
from ddpm.export import diffusers_scheduler_config
from ddpm.pretrained import save_pretrained
from ddpm.samplers import sample
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
    theirs = pipe(batch_size=3, num_inference_steps=100, generator=torch.Generator().manual_seed(0), output_type="np").images
    ours = sample(ours, model, 3, (1, 28, 28), generator=torch.Generator().manual_seed(0))
    ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # DDPMPipeline's [−1, 1] → [0, 1], NHWC
    assert theirs.shape == ours.shape and np.abs(theirs - ours).max() < 1e-4  # both draw x_T, then z_t, from one stream
