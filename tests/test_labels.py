"""ddpm/labels.py: the digit prompts and their one-hot context."""
import pytest
import torch

from ddpm.labels import digit_context, parse_digit_prompt


def test_prompts_name_one_digit():
    assert [parse_digit_prompt(p) for p in ["a handwritten 7", "3", "nine"]] == [7, 3, 9]
    assert torch.equal(digit_context([7, 3]).argmax(1), torch.tensor([7, 3]))


@pytest.mark.parametrize("bad", ["", "a handwritten 12", "3 or 4", "a cat"])
def test_bad_prompts_are_named(bad):
    with pytest.raises(ValueError, match="prompt"):
        parse_digit_prompt(bad)
