"""ddpm/validators.py: each check's accepted values, its one-line ParamError naming the key; Registry, library_check."""
import pytest

import ddpm.samplers
from ddpm.validators import (ParamError, Registry, auto_or, choice, int_list, integer, library_check, modules_of,
                             optional_text, real, real_list, str_list, text)


def refused(check, value, key="sec.k"):
    """The one-line message of the ParamError `check` raises for value."""
    with pytest.raises(ParamError) as e:
        check(key, value)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"params.yaml: {key}")
    return message


def test_integer_bounds_and_types():
    assert integer(1, 10)("sec.k", 10) == 10 and integer()("sec.k", -(10**30)) == -(10**30)
    assert refused(integer(1, 10), 11) == "params.yaml: sec.k = 11: must be an integer in [1, 10]"
    assert refused(integer(2), 1) == "params.yaml: sec.k = 1: must be an integer ≥ 2"
    assert refused(integer(hi=3), 4) == "params.yaml: sec.k = 4: must be an integer ≤ 3"
    for bad in (True, False, "3", None, [3], 2.5):
        refused(integer(), bad)


def test_integral_floats_become_int_but_non_finite_ones_do_not():
    got = integer(0, 10**6)("sec.k", 1e3)  # YAML 1.2 reads 1e3 as 1000.0
    assert got == 1000 and type(got) is int
    assert refused(integer(0), float("inf")) == "params.yaml: sec.k = inf: must be an integer ≥ 0"
    assert "= nan" in refused(integer(0), float("nan"))
    assert refused(integer(0, 2**31 - 1), 10**400).endswith(": must be an integer in [0, 2147483647]")
    assert refused(integer(0, 100), 1e300).endswith(": must be an integer in [0, 100]")  # integral: becomes an int


@pytest.mark.parametrize("check, ok, bad, words", [
    (real(0, 1), [0, 1, 0.5], [-0.1, 1.1], "must be a number with 0 ≤ k ≤ 1"),
    (real(0, 1, lo_open=True), [1e-9, 1], [0, 0.0], "must be a number with 0 < k ≤ 1"),
    (real(0, 1, hi_open=True), [0, 0.999], [1, 1.0], "must be a number with 0 ≤ k < 1"),
    (real(0, lo_open=True), [1e300, 3], [0, -1], "must be a number with 0 < k"),
    (real(hi=5), [-1e300, 5], [5.01], "must be a number with k ≤ 5"),
])
def test_real_open_and_closed_bounds(check, ok, bad, words):
    assert [check("sec.k", v) for v in ok] == ok
    for v in bad:
        assert words in refused(check, v)


def test_real_refuses_non_numbers_non_finite_and_huge():
    for bad in (float("nan"), float("inf"), -float("inf"), 10**400, True, "0.5", None):
        refused(real(), bad)
    assert real()("sec.k", 10**300) == 10**300  # an int that is finite as a float is a number


def test_choice_compares_type_and_value():
    assert choice(True, False)("sec.k", False) is False
    assert refused(choice(True, False), 1) == "params.yaml: sec.k = 1: must be one of True, False"
    assert "= True: must be one of 1, 2" in refused(choice(1, 2), True)
    assert "must be one of 'a', 'b'" in refused(choice("a", "b"), "A")
    assert "= 1.0" in refused(choice(1), 1.0)


def test_lists():
    assert int_list(1, 4)("sec.k", [1, 4]) == [1, 4] and int_list(nonempty=False)("sec.k", []) == []
    assert refused(int_list(1, 4), [5]) == "params.yaml: sec.k = [5]: must be a non-empty list of integers in [1, 4]"
    assert "must be a non-empty list of integers ≥ 0" in refused(int_list(), [])
    assert "must be a list of integers" in refused(int_list(nonempty=False), [True])
    for bad in (3, (1, 2), [1, "2"], [1.5]):
        refused(int_list(), bad)
    assert str_list()("sec.k", ["a", "b"]) == ["a", "b"] and str_list(nonempty=False)("sec.k", []) == []
    assert refused(str_list(), ["a", ""]) == "params.yaml: sec.k = ['a', '']: must be a non-empty list of strings"
    for bad in ([], "ab", [1], None):
        refused(str_list(), bad)
    assert real_list(0.0, 10)("sec.k", [0.5, 10]) == [0.5, 10]
    assert refused(real_list(0.0, 10), [0]) == ("params.yaml: sec.k = [0]: must be a non-empty list of numbers "
                                                 "> 0.0 and ≤ 10")
    for bad in ([], [float("nan")], [10**400], [True], [11], "1"):
        refused(real_list(0.0, 10), bad)


def test_text_and_optional_text():
    assert text("sec.k", "ViT-B-32") == "ViT-B-32" and optional_text("sec.k", "") == ""
    assert refused(text, "") == "params.yaml: sec.k = '': must be a non-empty string"
    for bad in ("   ", None, 3, ["a"]):
        refused(text, bad)
        refused(optional_text, bad)


def test_auto_or():
    check = auto_or(real(0, 100))
    assert check("sec.k", "auto") == "auto" and check("sec.k", 2.5) == 2.5
    assert refused(check, 101) == "params.yaml: sec.k = 101: must be a number with 0 ≤ k ≤ 100 (or 'auto')"
    assert refused(check, "Auto").endswith("(or 'auto')")


def test_a_registry_reads_the_library_when_it_checks(monkeypatch):
    sampler = Registry("ddpm.samplers", "SAMPLERS")
    assert sampler.modules == ("ddpm.samplers",) and modules_of(sampler) == ("ddpm.samplers",)
    assert sampler.options() == tuple(ddpm.samplers.SAMPLERS)
    names = ", ".join(map(repr, ddpm.samplers.SAMPLERS))  # e.g. 'ancestral', 'ddim', 'dpm++2m'
    assert "'ddim'" in names and refused(sampler, "euler") == f"params.yaml: sec.k = 'euler': must be one of {names}"
    monkeypatch.setitem(ddpm.samplers.SAMPLERS, "euler", ddpm.samplers.SAMPLERS["ddim"])
    assert sampler("sec.k", "euler") == "euler"  # no other edit
    refused(sampler, 1)


def test_library_check_turns_the_librarys_value_error_into_a_param_error():
    prompts = library_check("ddpm.labels", "parse_digit_prompts", str_list())
    assert prompts("sec.k", ["a handwritten 7", "three"]) == ["a handwritten 7", "three"]
    assert refused(prompts, ["a 7 or an 8"]) == ("params.yaml: sec.k: prompt 'a 7 or an 8': name exactly one digit "
                                                 "0–9 (e.g. 'a handwritten 7')")
    assert refused(prompts, []) == "params.yaml: sec.k = []: must be a non-empty list of strings"  # its check first
    assert modules_of(prompts) == ("ddpm.labels",)
    assert modules_of(integer()) == () and modules_of(text) == ()


def test_an_integer_too_large_for_any_tensor_is_refused_in_one_short_line():
    with pytest.raises(ParamError) as e:
        integer(1)("judge.batch_size", 10**400)
    assert "judge.batch_size = 1000" in str(e.value) and len(str(e.value)) < 120 and "\n" not in str(e.value)
