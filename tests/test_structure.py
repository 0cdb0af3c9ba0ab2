"""The code's shape: no import cycles inside ddpm, no function-local imports of its own modules, thin stages, and
dvc.yaml declaring exactly what each stage's script needs (ddpm.pipeline)."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm.params import read_yaml
from ddpm.pipeline import code_closure, differences, imported_modules
from tests.conftest import own_modules

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
    for item in ("ddpm", "stages", "celeba", "dvc.yaml", "params.yaml"):
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


def dvc_edges() -> set[tuple[str, str]]:
    """(a, b) for every stage b that depends on a path stage a writes (or a path inside it)."""
    stages = read_yaml(ROOT / "dvc.yaml")["stages"]

    def paths(stage: dict, key: str) -> list[str]:
        return [next(iter(x)) if isinstance(x, dict) else x for x in stage.get(key, [])]

    return {(a, b) for a, sa in stages.items() for b, sb in stages.items() if a != b
            for out in paths(sa, "outs") for dep in paths(sb, "deps")
            if dep == out or dep.startswith(out.rstrip("/") + "/") or out.startswith(dep.rstrip("/") + "/")}


def drawn_edges(drawing: str) -> set[tuple[str, str]]:
    """Edges of docs/pipeline.md's drawing: a ── b on a line; a ─┬ / ├ / └ branches to the first stage of each
    branch line; every line that ends in ┐ or ┤ feeds the stage on the line that ends in ◀─┘."""
    lines = [line for line in drawing.splitlines() if line.strip() and not line.lstrip().startswith("(")]
    edges, fork, feeds_report, sink = set(), {}, [], None
    for line in lines:
        tokens = [(m.start(), m.group()) for m in re.finditer(r"[a-z_]+", line)]
        if "◀" in line:
            sink = tokens[0][1]
            continue
        for (_, a), (_, b) in zip(tokens, tokens[1:]):
            edges.add((a, b))
        branch = re.match(r"\s*([├└])", line)
        if branch:
            edges.add((fork[branch.end() - 1], tokens[0][1]))
        for column in (m.start() for m in re.finditer("┬", line)):
            fork[column] = [name for start, name in tokens if start < column][-1]
        if line.rstrip()[-1] in "┐┤":
            feeds_report.append(tokens[-1][1])
    return edges | {(a, sink) for a in feeds_report}


def test_the_drawing_in_docs_agrees_with_dvc_dag():
    text = (ROOT / "docs" / "pipeline.md").read_text()
    drawing = text.split("```\n", 2)[1]
    drawn, real = drawn_edges(drawing), dvc_edges()
    assert drawn <= real, f"drawn but not in dvc.yaml: {sorted(drawn - real)}"
    named = {name for edge in drawn for name in edge}
    assert named == set(read_yaml(ROOT / "dvc.yaml")["stages"]), "the drawing names other stages than dvc.yaml"
    reach = set(drawn)
    while True:  # the drawing's transitive closure: a stage also feeds whatever its outputs' readers feed
        more = {(a, d) for a, b in reach for c, d in reach if b == c} - reach
        if not more:
            break
        reach |= more
    # download_mnist and the judge feed most stages directly: the note under the drawing says so
    missing = {(a, b) for a, b in real if a not in ("download_mnist", "judge") and (a, b) not in reach}
    assert not missing, f"in dvc.yaml but not drawn: {sorted(missing)}"


@pytest.mark.parametrize("path", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.name)
def test_stages_import_modules_of_the_package_not_its_names(path):
    """`from ddpm import Diffusion` works (ddpm/__init__.py loads it lazily), but it names no module: the derived
    deps of the stage would miss ddpm/diffusion.py. Stages write `from ddpm.diffusion import Diffusion`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "ddpm":
            names = [a.name for a in node.names if not (ROOT / "ddpm" / f"{a.name}.py").exists()]
            assert not names, f"{path.name}: from ddpm import {', '.join(names)}: import it from its module"


def test_importing_the_package_runs_none_of_its_modules():
    """ddpm/__init__.py imports lazily (PEP 562): `import ddpm` loads no submodule and no torch, and the names still
    resolve on first use."""
    code = ("import sys, ddpm; assert not [m for m in sys.modules if m.startswith('ddpm.') or m == 'torch'], "
            "sorted(sys.modules); ddpm.Diffusion, ddpm.sample; assert 'ddpm.unet' not in sys.modules; ddpm.UNet; "
            "print(ddpm.__version__)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == read_yaml_toml_version()


def read_yaml_toml_version() -> str:
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_version_is_written_once():
    """pyproject.toml holds it; ddpm.__version__ reads the installed metadata, so a release edits no module (and
    stales no DVC stage)."""
    version = read_yaml_toml_version()
    assert not [p.name for p in (ROOT / "ddpm").rglob("*.py") if version in p.read_text()]


def test_the_derived_code_deps_agree_with_pythons_modulefinder():
    """dvc.yaml's code deps of every stage (written by ddpm.pipeline) against an independent walk: the modules
    Python's modulefinder finds from the stage's script (and ddpm/launch.py for a launched stage), plus package data."""
    for file in ("dvc.yaml", "celeba/dvc.yaml"):
        for name, stage in read_yaml(ROOT / file)["stages"].items():
            found = {Path(f).relative_to(ROOT).as_posix() for f in own_modules(ROOT, name, "ddpm.launch" in stage["cmd"])}
            found |= {f"stages/{name}.py"} | ({"ddpm/templates"} if "ddpm/report.py" in found else set())
            folder = Path(file).parent  # deps are written relative to the dvc.yaml's folder
            declared = {os.path.normpath(folder / d) for d in (next(iter(x)) if isinstance(x, dict) else x
                                                                for x in stage["deps"])}
            declared = {d for d in declared if d.startswith(("ddpm/", "stages/"))}
            assert declared == found, f"{file}: {name}: declared − found {declared - found}, found − declared {found - declared}"


# The package's layers, bottom first (docs/pipeline.md draws them): a module imports from its own layer or below.
LAYERS = {
    "foundations": {"io", "modelfolder", "device", "schedule", "metrics", "completion", "labels", "validators",
                    "deprecation", "dvccache"},
    "math": {"diffusion", "unet", "checks"},
    "sampling": {"samplers", "guidance", "distributed"},
    "training and data": {"train", "checkpoint", "data", "celeba", "context", "judge"},
    "around training": {"callbacks", "probe", "evaluation", "figures", "report", "pretrained"},
    "products": {"recipe", "export", "diffusers_unet", "cli"},
    "pipeline": {"schema", "topology", "params", "stage", "launch", "pipeline"},
}
LEVEL = {module: i for i, modules in enumerate(LAYERS.values()) for module in modules}


def test_every_module_has_a_layer_and_a_test_file_named_after_it():
    modules = {p.stem for p in MODULES} - {"__init__"}
    assert modules == set(LEVEL), f"no layer: {modules - set(LEVEL)}; gone: {set(LEVEL) - modules}"
    untested = sorted(m for m in modules if not (ROOT / "tests" / f"test_{m}.py").exists())
    assert not untested, f"tests mirror the package: no tests/test_<module>.py for {untested}"


def test_no_import_goes_up_a_layer():
    upward = sorted((p.stem, q.stem) for p in MODULES if p.stem in LEVEL
                    for q in imported_modules(p, ROOT) if q.stem in LEVEL and LEVEL[q.stem] > LEVEL[p.stem])
    assert not upward, "imports up a layer (importer, imported): " + ", ".join(f"{a} → {b}" for a, b in upward)
