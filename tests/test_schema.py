"""ddpm/schema.py: every key a message or docstring of the library or a stage names exists in the schema."""
import ast
import importlib
import re
from pathlib import Path

from ddpm.schema import RUNTIME, SCHEMA
from ddpm.topology import OPTIONAL

ROOT = Path(__file__).resolve().parents[1]
# section.key as a message writes it (not a file name, a module or an attribute: none is followed by . or ( )
KEY = re.compile(r"(?<![\w./{])([a-z][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b(?![./(])")
NOT_KEYS = {"ddpm", "torch", "json", "config", "section", "cache"}  # modules, objects
MODULES = {p.stem for p in (ROOT / "ddpm").glob("*.py")}


def names_a_module_attribute(first: str, second: str) -> bool:
    """"labels.digit_context" names a function of ddpm/labels.py, not a key ("train.lr" names neither)."""
    return first in MODULES and hasattr(importlib.import_module(f"ddpm.{first}"), second)
FILE_TYPES = {"png", "pt", "json", "yaml", "lock", "csv", "txt", "tsv", "py", "safetensors", "bin", "zip", "md",
              "html", "load", "npz"}


def named_keys(path: Path) -> set[str]:
    """The section.key names in a file's string literals (messages, docstrings, f-strings' literal parts)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= {m.group(0) for m in KEY.finditer(node.value)
                      if m.group(1) not in NOT_KEYS and m.group(2) not in FILE_TYPES
                      and not names_a_module_attribute(m.group(1), m.group(2))}
    return found


def test_every_key_a_message_names_exists():
    files = sorted([*(ROOT / "ddpm").glob("*.py"), *(ROOT / "stages").glob("*.py")])
    named = {(f.relative_to(ROOT).as_posix(), key) for f in files for key in named_keys(f)}
    assert len(named) > 20  # the walk finds the messages' keys at all
    keys = {name: set(SCHEMA[name]) | (set(RUNTIME) if name in OPTIONAL else set()) for name in SCHEMA}
    wrong = sorted((f, key) for f, key in named if key.split(".")[1] not in keys.get(key.split(".")[0], set()))
    assert not wrong, f"messages naming keys params.yaml does not have: {wrong}"


def test_the_walk_finds_a_wrong_key(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('raise ValueError(f"loss is nan; lower train.lr or set {x}.amp, see params.yaml")\n')
    assert named_keys(bad) == {"train.lr"}
