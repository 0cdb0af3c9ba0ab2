"""ddpm/dvccache.py: cached_output_file finds a stage's output file in DVC 3's cache (files/md5/xx/…), or None."""
import hashlib
import json

import pytest

from ddpm.dvccache import cache_dir, cached_output_file
from tests.conftest import write_yaml

STAGE, OUT = "train_mnist", "data/mnist/model"


@pytest.fixture(autouse=True)
def no_user_dvc_config(tmp_path_factory, monkeypatch):
    """The machine's and the user's DVC config (a cache.dir there) play no part."""
    for name in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path_factory.mktemp(name.lower())))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(cache, digest: str, data: bytes):
    path = cache / "files" / "md5" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build(project, files=None, cache=None, outs=None):
    """A DVC project at `project` whose dvc.lock records STAGE's folder OUT (holding `files`) and a plain output,
    with the folder's listing (a `.dir` object) and the files in `cache` (.dvc/cache by default). Returns the cached
    paths by relpath."""
    files = {"checkpoint.pt": b"the last checkpoint", "config.json": b"{}"} if files is None else files
    cache = project / ".dvc" / "cache" if cache is None else cache
    paths = {name: put(cache, md5(data), data) for name, data in files.items()}
    listing = json.dumps([{"md5": md5(data), "relpath": name} for name, data in sorted(files.items())]).encode()
    folder = md5(listing) + ".dir"
    put(cache, folder, listing)
    if outs is None:
        outs = [{"path": "reports/train_mnist/metrics.json", "hash": "md5", "md5": md5(b"{}"), "size": 2},
                {"path": OUT, "hash": "md5", "md5": folder, "size": 1, "nfiles": len(files)}]
    (project / ".dvc").mkdir(exist_ok=True)
    write_yaml({"schema": "2.0", "stages": {STAGE: {"cmd": "python -m ddpm.launch train_mnist", "outs": outs}}},
               project / "dvc.lock")
    return paths


def test_the_file_is_found_in_the_cache(tmp_path):
    paths = build(tmp_path)
    got = cached_output_file(STAGE, OUT, "checkpoint.pt", tmp_path)
    assert got == paths["checkpoint.pt"] and got.read_bytes() == b"the last checkpoint"
    assert got.parent.name == md5(b"the last checkpoint")[:2] and got.parent.parent == tmp_path / ".dvc/cache/files/md5"
    assert cached_output_file(STAGE, OUT, "config.json", tmp_path).read_bytes() == b"{}"


def test_the_current_folder_is_the_default_project(tmp_path, monkeypatch):
    build(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cached_output_file(STAGE, OUT, "checkpoint.pt").resolve() == (
        tmp_path / ".dvc/cache/files/md5" / md5(b"the last checkpoint")[:2] / md5(b"the last checkpoint")[2:])


def test_nothing_recorded_is_none(tmp_path):
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", tmp_path) is None  # no dvc.lock
    paths = build(tmp_path)
    assert cached_output_file("train_mnist_cfg", OUT, "checkpoint.pt", tmp_path) is None  # no such stage
    assert cached_output_file(STAGE, "data/mnist/model_cfg", "checkpoint.pt", tmp_path) is None  # no such output
    assert cached_output_file(STAGE, OUT, "guide.safetensors", tmp_path) is None  # not in the folder's listing
    paths["checkpoint.pt"].unlink()  # dvc gc, or a pull of the lock without the cache
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", tmp_path) is None
    assert cached_output_file(STAGE, OUT, "config.json", tmp_path) is not None


@pytest.mark.parametrize("damage", ["listing missing", "listing garbled", "listing not a list", "empty lock",
                                    "stage without outs", "out without md5"])
def test_a_damaged_record_is_none(tmp_path, damage):
    build(tmp_path)
    listing = next((tmp_path / ".dvc/cache/files/md5").glob("*/*.dir"))
    if damage == "listing missing":
        listing.unlink()
    elif damage == "listing garbled":
        listing.write_text('[{"md5": ')
    elif damage == "listing not a list":
        listing.write_text('{"relpath": "checkpoint.pt"}')
    elif damage == "empty lock":
        (tmp_path / "dvc.lock").write_text("")
    elif damage == "stage without outs":
        write_yaml({"schema": "2.0", "stages": {STAGE: {"cmd": "x"}}}, tmp_path / "dvc.lock")
    else:
        build(tmp_path, outs=[{"path": OUT, "hash": "md5"}])
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", tmp_path) is None


def test_a_garbled_lock_is_none(tmp_path):
    build(tmp_path)
    (tmp_path / "dvc.lock").write_text("stages: [1, 2\n")
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", tmp_path) is None


def test_the_cache_dir_of_dvcs_config_is_used(tmp_path):
    """A queued experiment's temporary copy: .dvc/config points at the project's cache (relative to .dvc/)."""
    project, shared = tmp_path / "copy", tmp_path / "shared-cache"
    project.mkdir()
    paths = build(project, cache=shared)
    (project / ".dvc" / "config").write_text("[cache]\n    dir = ../../shared-cache\n")
    assert cache_dir(project) == shared
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", project) == paths["checkpoint.pt"]
    (project / ".dvc" / "config").write_text(f"[cache]\n    dir = {tmp_path / 'elsewhere'}\n")
    assert cache_dir(project) == tmp_path / "elsewhere"
    assert cached_output_file(STAGE, OUT, "checkpoint.pt", project) is None  # not in the configured cache


def test_no_config_or_an_unreadable_one_is_the_default_cache(tmp_path):
    assert cache_dir(tmp_path) == tmp_path / ".dvc" / "cache"
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[cache\n  dir = = =\n")
    assert cache_dir(tmp_path) == tmp_path / ".dvc" / "cache"
