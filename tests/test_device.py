"""ddpm/device.py: the device and precision chosen, and the bf16 path against fp32."""
import pytest
import torch

from ddpm import UNet, device
from ddpm.device import autocast_dtype, native_bf16, with_autocast
from tests.conftest import randomize


def test_bf16_fast_path_matches_fp32_on_a_fixed_input():
    """The sampling fast path (bf16 autocast) against plain fp32, profile-sized UNet, fixed input and times:
    relative error ‖ε̂_bf16 − ε̂_fp32‖ / ‖ε̂_fp32‖ < 3 % (bf16 keeps 8 mantissa bits, ~0.4 % per rounding)."""
    torch.manual_seed(0)
    model = randomize(UNet(channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,))).eval()
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 10, 100, 300, 500, 800, 999])
    with torch.no_grad():
        ref, fast = model(x, t), with_autocast(model, torch.bfloat16)(x, t)
    assert fast.dtype == torch.float32
    rel = ((fast - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.03, rel  # > 0: the fast path did run in bf16


@pytest.mark.parametrize("avx512_bf16, amx, expect", [(False, False, None), (True, False, torch.bfloat16),
                                                       (False, True, torch.bfloat16)])
def test_amp_auto_picks_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, capsys, avx512_bf16, amx, expect):
    """auto must not pick emulated bf16 (300× slower matmuls on an AVX2-only CPU); explicit bf16 is kept, with a warning."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(device, "_warned", set())
    cpu = torch.device("cpu")
    assert native_bf16(cpu) is (expect is not None)
    assert autocast_dtype("auto", cpu) is expect and autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16 and autocast_dtype("bf16", cpu) is torch.bfloat16
    warned = capsys.readouterr().err
    assert ("warning: amp = bf16 on cpu without native bf16" in warned) is (expect is None)
    assert len(warned.splitlines()) <= 1  # one line, once per process
