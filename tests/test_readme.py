"""The README's library example runs (on a shorter schedule and a narrower UNet, so that it takes seconds)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_library_example_runs():
    code = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "linear_betas" in b)
    small = {"ddpm.linear_betas(1000)": "ddpm.linear_betas(40)", "channels=64,": "channels=8, groups=4, T=40,",
             "steps=50": "steps=4"}
    for old, new in small.items():
        assert old in code, old
        code = code.replace(old, new)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 (our own README)
    assert scope["x"].shape == (8, 1, 28, 28) and scope["loss"].item() > 0
