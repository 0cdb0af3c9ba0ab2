"""What each DVC stage really depends on, derived from its script, and a check (or fix) of dvc.yaml against it.

    python -m ddpm.pipeline          # exit 1 and one line per difference if dvc.yaml has drifted
    python -m ddpm.pipeline --fix    # rewrite the code deps and params lists of dvc.yaml (comments kept)

A stage's code is its script plus every module of `ddpm` it imports, transitively (importing any `ddpm` module
also runs ddpm/__init__.py); the launcher's modules when its cmd runs `python -m ddpm.launch`; and package data
those modules read (the report's templates). Its params are the sections `params.load_stage(name)` returns
(topology.STAGE_SECTIONS), and checking them imports the library modules whose choices they read (a sampler key
reads ddpm/samplers.py: validators.Registry), which count as its code too. Its data are the paths its script names: each must be declared as a dep or an output,
and each declared data dep must be named by the script. The library has no function-local imports of its own
modules (tests/test_structure.py), so reading the import statements finds every module, except those the params
checks import when they run: each check declares them (`validators.modules_of`).
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .params import per_profile, read_yaml
from .schema import SCHEMA
from .topology import split_entry, stage_sections
from .validators import modules_of

PACKAGE = "ddpm"
PACKAGE_DATA = {"ddpm/report.py": ["ddpm/templates"]}  # files a module reads at run time
DATA_ROOTS = ("data/", "reports/")  # relative to the stage's project folder, where it runs
SCRATCH = ("data/resume/",)  # an unfinished run's own state: never a DVC output (see dvc.yaml)
PIPELINES = ("dvc.yaml", "celeba/dvc.yaml")  # the MNIST project and the CelebA one; each runs in its own folder


def module_path(name: str, root: Path) -> Path | None:
    """ddpm.x → root/ddpm/x.py (or its package's __init__.py); None for modules outside the package."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = root / Path(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imported_modules(path: Path, root: Path) -> set[Path]:
    """The package's modules that `path` imports anywhere in it (absolute or relative imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1]) if path.is_relative_to(root) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y / from . import x
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from ddpm import params` imports a module
    found = {module_path(n, root) for n in names}
    return {p for p in found if p is not None and p.exists()}


def code_closure(script: Path, root: Path, launcher: bool = False) -> set[str]:
    """The script and every package module it runs, transitively, as paths relative to root."""
    todo = [script] + ([root / PACKAGE / "launch.py"] if launcher else [])
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += imported_modules(path, root)
        if path.is_relative_to(root / PACKAGE):
            todo.append(root / PACKAGE / "__init__.py")  # importing ddpm.x runs ddpm/__init__.py first
    files = {p.relative_to(root).as_posix() for p in seen}
    return files | {d for f in files for d in PACKAGE_DATA.get(f, [])}


def named_paths(script: Path) -> set[str]:
    """The data paths (under data/ or reports/) a script uses, found by folding its path expressions: literals,
    Path(literal), module constants and `base / "name"` joins. A module constant counts where it is used; a join's
    base counts only through the joined path."""
    tree = ast.parse(script.read_text())
    consts: dict[str, str] = {}
    definitions: list[ast.AST] = []
    for node in tree.body:  # module constants: NAME = Path("data/…") or A, B = Path(…), Path(…)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple)
                         and isinstance(node.value, ast.Tuple) else [(target, node.value)])
                for name, value in pairs:
                    folded = _fold(value, consts)
                    if isinstance(name, ast.Name) and folded is not None:
                        consts[name.id] = folded
                        definitions.append(value)
    roots = definitions + [n.left for n in ast.walk(tree) if isinstance(n, ast.BinOp) and _fold(n, consts) is not None]
    skipped = {id(sub) for root in roots for sub in ast.walk(root)}  # inside a definition or a join's base
    skipped |= {id(key) for n in ast.walk(tree) if isinstance(n, ast.Dict) for key in n.keys}  # {"data": …} names no path
    return {folded for node in ast.walk(tree)
            if id(node) not in skipped and (folded := _fold(node, consts)) is not None}


def _fold(node: ast.AST, consts: dict[str, str]) -> str | None:
    """The path an expression denotes, if it is made of literals, Path(…), known constants and `/` joins."""
    if (isinstance(node, ast.Constant) and isinstance(node.value, str) and (node.value + "/").startswith(DATA_ROOTS)
            and not (node.value + "/").startswith(SCRATCH)):
        return node.value.rstrip("/")
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return consts.get(node.id)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path" and len(node.args) == 1:
        return _fold(node.args[0], consts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left = _fold(node.left, consts)
        right = node.right.value if isinstance(node.right, ast.Constant) and isinstance(node.right.value, str) else None
        return f"{left}/{right}" if left is not None and right is not None else None
    return None


def stage_name_read(script: Path) -> str | None:
    """The literal stage name passed to params.load_stage in a script (None if it reads no params)."""
    for node in ast.walk(ast.parse(script.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load_stage" and node.args
                and isinstance(node.args[0], ast.Constant)):
            return node.args[0].value
    return None


@dataclass
class Expected:
    code: set[str]
    params: list[str]
    data: set[str]


def expected(stage: str, definition: dict[str, Any], root: Path, folder: Path = Path(".")) -> Expected:
    """What the dvc.yaml in `folder` must declare for `stage`, derived from its script (stages/<stage>.py): code
    paths relative to that folder (where the stage runs), data paths as the script names them."""
    script = root / "stages" / f"{stage}.py"
    launcher = "ddpm.launch" in str(definition.get("cmd", ""))
    read = stage_name_read(script)
    if read not in (stage, None):
        raise ValueError(f"{script}: reads params.load_stage({read!r}); a stage reads its own section ({stage!r})")
    sections = stage_sections(stage) if read else []
    profiled = any(reads_per_profile(read_yaml(root / folder / "params.yaml"), entry) for entry in sections)
    params = sections + (["profile"] if profiled else [])  # a per-profile value: `profile` picks it
    checkers = {module_path(m, root) for entry in sections for m in checked_modules(entry)}
    closure = set().union(code_closure(script, root, launcher), *(code_closure(m, root) for m in checkers if m))
    code = {Path(os.path.relpath(root / p, root / folder)).as_posix() for p in closure}
    return Expected(code, params, named_paths(script))


def checked_modules(entry: str) -> set[str]:
    """The library modules that checking a params entry ("sample", "sweep_celeba.prompts") imports."""
    section, only = split_entry(entry)
    checks = SCHEMA.get(section, {})
    return {m for key, check in checks.items() if only in (None, key) for m in modules_of(check)}


def reads_per_profile(params: Any, entry: str) -> bool:
    """Whether a params entry holds a value given per profile (then the stage depends on `profile` too)."""
    section, only = split_entry(entry)
    values = params.get(section) if isinstance(params, dict) else None
    return isinstance(values, dict) and any(per_profile(v) for k, v in values.items() if only in (None, k))


def is_code(dep: str, folder: Path) -> bool:
    """A dep (relative to the stage's folder) that is a module of the package or a stage script."""
    return os.path.normpath(folder / dep).startswith((PACKAGE + os.sep, "stages" + os.sep))


def _paths(entries: list[Any]) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def _covers(declared: list[str], path: str) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def pipeline_stages(root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every stage of PIPELINES: name → (its dvc.yaml, its definition). Each runs in its dvc.yaml's folder."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for file in PIPELINES:
        for name, definition in YAML(typ="safe").load((root / file).read_text())["stages"].items():
            if definition.get("wdir", ".") != ".":
                raise ValueError(f"{file}: stage {name} must run in its dvc.yaml's folder (no wdir)")
            found[name] = (file, definition)
    return found


def differences(root: Path = Path(".")) -> list[str]:
    """One line per difference between the dvc.yaml files and what the stages' scripts need; empty when they agree."""
    stages = pipeline_stages(root)
    scripts = {p.stem for p in (root / "stages").glob("*.py")}
    problems = [f"stages/{s}.py: no stage {s} in {' or '.join(PIPELINES)}" for s in sorted(scripts - set(stages))]
    for name, (file, definition) in stages.items():
        if name not in scripts:
            problems.append(f"{file}: stage {name} has no script stages/{name}.py")
            continue
        folder = Path(file).parent
        want = expected(name, definition, root, folder)
        deps = _paths(definition.get("deps"))
        outs = [p for key in ("outs", "metrics", "plots") for p in _paths(definition.get(key))]
        code = {d for d in deps if is_code(d, folder)}
        for missing in sorted(want.code - code):
            problems.append(f"{file}: stage {name} does not declare {missing} (its script imports it)")
        for extra in sorted(code - want.code):
            problems.append(f"{file}: stage {name} declares {extra}, which its script does not import")
        if list(definition.get("params") or []) != want.params:
            problems.append(f"{file}: stage {name} params must be {want.params} (topology.STAGE_SECTIONS), "
                            f"not {definition.get('params') or []}")
        for path in sorted(want.data):  # covered by a declaration, or a folder of declared files (e.g. dvclive's)
            if not _covers(deps + outs, path) and not any(_covers([path], d) for d in deps + outs):
                problems.append(f"{file}: stage {name} reads or writes {path} but declares it neither as dep nor out")
        for dep in sorted(set(deps) - code):
            if not any(_covers([dep], p) or _covers([p], dep) for p in want.data):
                problems.append(f"{file}: stage {name} declares dep {dep}, which its script never names")
        for out in sorted(outs):
            if not any(_covers([out], p) or _covers([p], out) for p in want.data):
                problems.append(f"{file}: stage {name} declares output {out}, which its script never names")
    return problems


def fix(root: Path = Path(".")) -> None:
    """Rewrite each stage's code deps (keeping its data deps) and params in the dvc.yaml files; comments are kept."""
    for file in PIPELINES:
        fix_file(root, Path(file))


def fix_file(root: Path, file: Path) -> None:
    yaml = YAML()  # round-trip
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    path, folder = root / file, file.parent
    doc = yaml.load(path.read_text())
    for name, definition in doc["stages"].items():
        if not (root / "stages" / f"{name}.py").exists():
            continue
        want = expected(name, definition, root, folder)
        data = [d for d in _paths(definition.get("deps")) if not is_code(d, folder)]
        definition["deps"] = sorted(want.code, key=lambda p: ("stages/" not in p, p)) + data
        if "params" in definition:
            del definition["params"]
        if want.params:  # right after deps, as `dvc stage add` writes it
            definition.insert(list(definition).index("deps") + 1, "params", want.params)
    with open(path, "w") as f:
        yaml.dump(doc, f)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--fix" in args:
        fix()
    problems = differences()
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{' and '.join(PIPELINES)} declare every stage's code, params and data")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
