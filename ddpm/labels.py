"""The MNIST twin's context: a digit as a one-hot vector, and the prompts that name one ('a handwritten 7')."""
from __future__ import annotations

import re
from typing import Sequence

import torch

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def parse_digit_prompt(prompt: str) -> int:
    """'7', 'a handwritten 7' or 'seven' → 7; anything else is a one-line error naming the prompt."""
    words = re.findall(r"[a-z]+|\d+", prompt.lower())
    found = {int(w) for w in words if w.isdigit() and len(w) == 1} | {DIGIT_WORDS.index(w) for w in words if w in DIGIT_WORDS}
    if len(found) != 1:
        raise ValueError(f"prompt {prompt!r}: name exactly one digit 0–9 (e.g. 'a handwritten 7')")
    return found.pop()


def parse_digit_prompts(prompts: Sequence[str]) -> list[int]:
    """Each prompt's digit (parse_digit_prompt), or the first prompt's one-line error."""
    return [parse_digit_prompt(prompt) for prompt in prompts]


def digit_context(digits: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """One-hot context vectors (N, 10); the UNet's context MLP is the learned label embedding."""
    return torch.nn.functional.one_hot(torch.as_tensor(digits, dtype=torch.long), 10).float()
