"""Property-based: random bad params never give a traceback, only one line that names the key."""
import copy
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpm.params import OPTIONAL, SCHEMA, ParamError, read_yaml, validate_all
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = {**read_yaml(ROOT / "celeba" / "params.yaml"), **read_yaml(ROOT / "params.yaml")}  # every section
KEYS = [(section, key) for section in SCHEMA for key in [*SCHEMA[section], *sorted(OPTIONAL.get(section, ()))]]

# values that no key accepts: every check wants a number, a bool, a string or a list of scalars
never_valid = st.one_of(
    st.none(), st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
    st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=3),
    st.lists(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), min_size=1, max_size=3),
)
# anything at all: valid by chance or not, it must never raise anything but ParamError
anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**400, 10**400), st.floats(), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def one_bad_change(draw):
    """params.yaml with one change that makes it invalid, and the name the error must contain."""
    params = copy.deepcopy(BASE)
    section, key = draw(st.sampled_from(KEYS))
    kind = draw(st.sampled_from(["value", "missing", "unknown key", "unknown section", "not a mapping"]))
    if kind == "value":
        params[section][key] = draw(never_valid)
        return params, f"{section}.{key}"
    if kind == "missing":
        if key in OPTIONAL.get(section, ()) and key not in params[section]:
            params[section][key] = draw(never_valid)  # an optional key that is absent: make it bad instead
            return params, f"{section}.{key}"
        del params[section][key]
        return params, f"{section}.{key} is missing"
    if kind == "unknown key":
        extra = draw(st.text(alphabet="abcdefghij_", min_size=1, max_size=10).filter(lambda k: k not in SCHEMA[section]))
        params[section][extra] = 1
        return params, f"{section}.{extra} is not a known key"
    if kind == "unknown section":
        extra = draw(st.text(alphabet="abcdefghij_", min_size=1, max_size=10).filter(lambda k: k not in SCHEMA))
        params[extra] = {}
        return params, f"section '{extra}' is not known"
    params[section] = draw(st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)))
    return params, f"section '{section}' is missing or not a mapping"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_bad_change())
def test_every_bad_value_stops_with_one_line_naming_its_key(case):
    params, expected = case
    try:
        validate_all(params)
    except ParamError as e:
        message = str(e)
        assert "\n" not in message and message.startswith("params.yaml"), message
        assert expected in message, (expected, message)
    else:
        raise AssertionError(f"accepted a bad params.yaml ({expected})")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEYS), anything)
def test_any_value_is_accepted_or_refused_in_one_line(key, value):
    params = copy.deepcopy(BASE)
    params[key[0]][key[1]] = value
    try:
        validate_all(params)
    except ParamError as e:
        assert "\n" not in str(e) and re.search(r"params\.yaml: (section '|\w+\.\w+)", str(e)), str(e)


def test_check_params_command(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "ddpm.params", str(ROOT / "params.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0 and "are valid" in ok.stdout
    bad = copy.deepcopy(BASE)
    bad["train_mnist"]["lr"] = "fast"
    write_yaml(bad, tmp_path / "params.yaml")
    out = subprocess.run([sys.executable, "-m", "ddpm.params", str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip() == "error: params.yaml: train_mnist.lr = 'fast': must be a number with 0 < lr ≤ 1"
