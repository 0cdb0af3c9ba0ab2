"""The code's shape: no import cycles inside ddpm, no function-local imports of its own modules, thin stages, and
dvc.yaml declaring exactly what each stage's script needs (ddpm.pipeline)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm.pipeline import code_closure, differences, imported_modules

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "ddpm").glob("*.py"))


def own_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "ddpm"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ddpm" for a in node.names)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_local_imports_of_our_own_modules(path):
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local = [ast.unparse(n) for n in ast.walk(fn) if own_import(n)]
            assert not local, f"{path.name}: {fn.name} imports {local} inside the function (hides a cycle)"


def test_no_import_cycles():
    graph = {p: {q for q in imported_modules(p, ROOT) if q.name != "__init__.py"} for p in MODULES}
    state: dict[Path, str] = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " → ".join(p.stem for p in cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_a_cycle_would_be_found(tmp_path):
    """The cycle finder sees relative imports (the test above can fail)."""
    pkg = tmp_path / "ddpm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("from . import a\n")
    assert imported_modules(pkg / "a.py", tmp_path) == {pkg / "b.py"}
    assert pkg / "a.py" in imported_modules(pkg / "b.py", tmp_path)


@pytest.mark.parametrize("path", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.name)
def test_stages_are_thin(path):
    assert len(path.read_text().splitlines()) <= 60, f"{path.name}: over 60 lines; move the logic into ddpm/"


def test_dvc_yaml_declares_what_every_stage_needs():
    assert differences(ROOT) == []
    r = subprocess.run([sys.executable, "-m", "ddpm.pipeline"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_drifted_declaration_is_reported(tmp_path):
    """Remove one module from one stage's deps, one params section, add a path the script never names: all found."""
    for item in ("ddpm", "stages", "dvc.yaml"):
        src = ROOT / item
        subprocess.run(["cp", "-r", str(src), str(tmp_path / item)], check=True)
    text = (tmp_path / "dvc.yaml").read_text()
    text = text.replace("      - ddpm/completion.py\n", "", 1)  # the first stage that imports it
    text = text.replace("      - runtime\n", "", 1)
    text = text.replace("      - data/mnist/raw\n", "      - data/mnist/raw\n      - data/nothing.pt\n", 1)
    (tmp_path / "dvc.yaml").write_text(text)
    found = "\n".join(differences(tmp_path))
    assert "does not declare ddpm/completion.py" in found
    assert "params must be" in found and "runtime" in found
    assert "data/nothing.pt, which its script never names" in found


def test_the_closure_follows_imports_transitively():
    closure = code_closure(ROOT / "stages" / "report.py", ROOT)
    assert {"ddpm/report.py", "ddpm/figures.py", "ddpm/completion.py", "ddpm/templates", "ddpm/__init__.py"} <= closure
    assert "ddpm/launch.py" not in closure and "ddpm/train.py" not in closure
