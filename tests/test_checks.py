"""ddpm/checks.py: the report's numerical checks of the closed forms."""
from ddpm.checks import posterior_table
from ddpm.diffusion import Diffusion
from ddpm.schedule import linear_betas


def test_posterior_table_rows_agree():
    rows = posterior_table(Diffusion(linear_betas(1000)), [0, 1, 10, 999])
    assert max(r["max_abs_diff"] for r in rows) < 1e-8
