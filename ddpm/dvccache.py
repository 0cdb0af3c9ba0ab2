"""A stage's last output, read back from DVC's cache.

Before DVC runs a stage it deletes the stage's outputs; the copy it cached stays, and dvc.lock still names it until
the stage succeeds. A training stage reads its last finished checkpoint from there, so that a longer run, or the
settings of an experiment brought back with `dvc exp apply`, continue from it (DVC 3's layout: files/md5/xx/…)."""
from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


def cache_dir(root: Path = Path(".")) -> Path:
    """DVC's cache folder for the project at root: cache.dir of its config (a queued experiment's temporary copy
    points there at the project's cache), else .dvc/cache."""
    try:
        from dvc.config import Config  # dvc is the pipeline's dependency, not the library's

        configured = Config(dvc_dir=str(root / ".dvc"))["cache"].get("dir")
    except Exception:  # no dvc, or an unreadable config: the default place
        configured = None
    return Path(configured) if configured else root / ".dvc" / "cache"


def cached_output_file(stage: str, output: str, name: str, project: Path = Path(".")) -> Path | None:
    """The file `name` of the folder `output` that the DVC project's dvc.lock records for `stage`, in its cache; None
    where dvc.lock, its entry or the cached file is missing."""
    try:
        outs = YAML(typ="safe").load((project / "dvc.lock").read_text())["stages"][stage]["outs"]
        folder_md5 = next(o["md5"] for o in outs if o["path"] == output)
        objects = cache_dir(project) / "files" / "md5"
        listing = json.loads((objects / folder_md5[:2] / folder_md5[2:]).read_text())
        md5 = next(entry["md5"] for entry in listing if entry["relpath"] == name)
    except (OSError, ValueError, KeyError, TypeError, StopIteration, YAMLError):  # no usable record: start afresh
        return None
    path = objects / md5[:2] / md5[2:]
    return path if path.exists() else None
