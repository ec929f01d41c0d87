"""integrity.checks: a DVC-tracked file that differs from its record is refused, a rebuilt one is not.

The records are written here in the exact format DVC 3.67 writes (`dvc add`, `dvc.lock`);
tests/flows/test_hostile.py checks the same against real `dvc` runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from integrity.checks import dir_md5, find_record, stage_in_sync, verify_tracked
from tunedag.config import load_config
from tunedag.errors import TunedagError

REPO = Path(__file__).resolve().parents[2]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def flip_byte(path: Path, at: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty DVC repository (just its `.dvc` folder)."""
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def dvc_add(repo: Path, rel: str, data: bytes, legacy: bool = False) -> Path:
    """Write a file and the `<file>.dvc` record `dvc add` writes for it."""
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out = {"md5": md5(data), "size": len(data), **({} if legacy else {"hash": "md5"}), "path": path.name}
    path.with_name(path.name + ".dvc").write_text(yaml.safe_dump({"outs": [out]}, sort_keys=False))
    return path


def write_lock(repo: Path, raw: dict, test_size: float = 0.2, code: bytes = b"print('prepare')\n") -> Path:
    """A prepare stage: code and a raw folder as deps, two params, the prepared file as its out."""
    (repo / "prep.py").write_bytes(code)
    (repo / "raw").mkdir(exist_ok=True)
    for name, data in raw.items():
        (repo / "raw" / name).write_bytes(data)
    prepared = repo / "data" / "prepared.parquet"
    prepared.parent.mkdir(exist_ok=True)
    prepared.write_bytes(b"PAR1" + bytes(range(200)) + str(test_size).encode())
    stage = {
        "cmd": "python prep.py",
        "deps": [
            {"path": "prep.py", "hash": "md5", "md5": md5(code), "size": len(code)},
            {"path": "raw", "hash": "md5", "md5": dir_md5(repo / "raw"), "size": 1, "nfiles": len(raw)},
        ],
        "params": {"params.yaml": {"data.test_size": test_size, "data.synthetic": {"n_samples": 100}}},
        "outs": [{"path": "data/prepared.parquet", "hash": "md5", "md5": md5(prepared.read_bytes()), "size": 210}],
    }
    lock = repo / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": stage}}, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump({"data": {"test_size": test_size, "synthetic": {"n_samples": 100}}}))
    return prepared


# --- untracked files ------------------------------------------------------------------------


def test_a_file_outside_any_dvc_repository_is_untracked(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert find_record(path) is None
    assert verify_tracked(path) == "untracked"


def test_a_missing_file_is_left_to_the_loader(repo: Path) -> None:
    path = dvc_add(repo, "data/raw/churn.csv", b"a\n1\n")
    path.unlink()
    assert verify_tracked(path) == "missing"


def test_a_file_dvc_does_not_track_is_untracked(repo: Path) -> None:
    dvc_add(repo, "data/other.csv", b"x\n")
    path = repo / "data" / "mine.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert verify_tracked(path) == "untracked"


# --- `dvc add` records ----------------------------------------------------------------------


def test_a_file_matching_its_dvc_record_passes(repo: Path) -> None:
    path = dvc_add(repo, "data/raw/churn.csv", b"a,b,label\n1,2,yes\n" * 50)
    record = find_record(path)
    assert record is not None and record.stage is None and record.source == path.with_name("churn.csv.dvc")
    assert verify_tracked(path) == "match"


def test_one_flipped_byte_in_an_added_file_is_refused_naming_file_hashes_and_fix(repo: Path) -> None:
    path = dvc_add(repo, "data/raw/churn.csv", b"a,b,label\n1,2,yes\n" * 50)
    recorded = md5(path.read_bytes())
    flip_byte(path)

    with pytest.raises(TunedagError) as info:
        verify_tracked(path)

    message = str(info.value)
    for word in (str(path), "churn.csv.dvc", recorded, md5(path.read_bytes()), f"dvc checkout --force {path}", f"dvc add {path}"):
        assert word in message
    assert "\n" not in message


def test_an_md5_given_by_the_caller_is_used(repo: Path) -> None:
    path = dvc_add(repo, "d.csv", b"a\n1\n")
    assert verify_tracked(path, md5=md5(b"a\n1\n")) == "match"
    with pytest.raises(TunedagError):
        verify_tracked(path, md5="0" * 32)


def test_a_dvc2_record_of_a_text_file_accepts_its_crlf_as_lf_hash(repo: Path) -> None:
    path = dvc_add(repo, "d.csv", b"a,b\n1,2\n", legacy=True)
    path.write_bytes(b"a,b\r\n1,2\r\n")  # DVC 2 hashed text with CRLF turned into LF
    assert verify_tracked(path) == "match"
    path.write_bytes(b"a,b\r\n1,3\r\n")
    with pytest.raises(TunedagError):
        verify_tracked(path)


def test_dir_md5_is_dvc_s_folder_hash(tmp_path: Path) -> None:
    (tmp_path / "f" / "sub").mkdir(parents=True)
    (tmp_path / "f" / "a.txt").write_bytes(b"a\n")
    (tmp_path / "f" / "sub" / "b.txt").write_bytes(b"b\n")
    assert dir_md5(tmp_path / "f") == "849835d274483dc683eb416d6e4f887d.dir"  # what `dvc add f` recorded (DVC 3.67)


def _dvc_add_folder(repo: Path, cached: bool = True) -> Path:
    folder = repo / "data" / "raw"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(b"x,y\n1,2\n")
    (folder / "b.csv").write_bytes(b"x,y\n3,4\n")
    listing = [{"md5": md5((folder / n).read_bytes()), "relpath": n} for n in ("a.csv", "b.csv")]
    dir_hash = dir_md5(folder)
    if cached:
        obj = repo / ".dvc" / "cache" / "files" / "md5" / dir_hash[:2] / dir_hash[2:]
        obj.parent.mkdir(parents=True)
        obj.write_text(json.dumps(listing))
    out = {"md5": dir_hash, "size": 16, "nfiles": 2, "hash": "md5", "path": "raw"}
    (repo / "data" / "raw.dvc").write_text(yaml.safe_dump({"outs": [out]}))
    return folder


def test_a_file_in_an_added_folder_is_checked_against_the_cached_listing(repo: Path) -> None:
    folder = _dvc_add_folder(repo)
    assert verify_tracked(folder / "a.csv") == "match"
    flip_byte(folder / "b.csv", at=2)
    with pytest.raises(TunedagError, match="raw.dvc"):
        verify_tracked(folder / "b.csv")


def test_a_file_in_an_added_folder_without_its_listing_in_the_cache_is_untracked(repo: Path) -> None:
    folder = _dvc_add_folder(repo, cached=False)
    flip_byte(folder / "b.csv", at=2)
    assert verify_tracked(folder / "b.csv") == "untracked"


# --- dvc.lock outputs: corruption only while the stage is in sync with its record --------------


def test_a_stage_output_matching_dvc_lock_passes(repo: Path) -> None:
    prepared = write_lock(repo, {"a.csv": b"1\n"})
    record = find_record(prepared)
    assert record is not None and record.stage == "prepare" and record.source == repo / "dvc.lock"
    assert stage_in_sync(repo / "dvc.lock", "prepare")
    assert verify_tracked(prepared) == "match"


def test_a_corrupted_output_of_an_in_sync_stage_is_refused(repo: Path) -> None:
    prepared = write_lock(repo, {"a.csv": b"1\n"})
    flip_byte(prepared)

    with pytest.raises(TunedagError) as info:
        verify_tracked(prepared)

    message = str(info.value)
    for word in (str(prepared), "dvc.lock", "'prepare'", f"dvc checkout --force {prepared}", "dvc commit --force prepare"):
        assert word in message


@pytest.mark.parametrize(
    "change",
    ["param-in-file", "param-override", "code", "raw-file-edited", "raw-file-added", "dep-deleted"],
)
def test_an_output_rebuilt_from_changed_inputs_is_stale_not_corrupt(repo: Path, change: str) -> None:
    """What `dvc repro`, `tunedag run` or a `--set` override leave before dvc.lock catches up."""
    prepared = write_lock(repo, {"a.csv": b"1\n"})
    current = None
    if change == "param-in-file":
        (repo / "params.yaml").write_text(yaml.safe_dump({"data": {"test_size": 0.3, "synthetic": {"n_samples": 100}}}))
    elif change == "param-override":
        current = {"data": {"test_size": 0.3, "synthetic": {"n_samples": 100}}}
    elif change == "code":
        (repo / "prep.py").write_bytes(b"print('prepare v2')\n")
    elif change == "raw-file-edited":
        (repo / "raw" / "a.csv").write_bytes(b"2\n")
    elif change == "raw-file-added":
        (repo / "raw" / "b.csv").write_bytes(b"2\n")
    else:
        (repo / "prep.py").unlink()
    prepared.write_bytes(b"PAR1 rebuilt from the new inputs")

    assert not stage_in_sync(repo / "dvc.lock", "prepare", current)
    assert verify_tracked(prepared, current) == "stale"


def test_the_running_config_is_compared_with_defaults_filled_in(repo: Path) -> None:
    """dvc.lock records a section as written in params.yaml; the running config also holds its defaults."""
    prepared = write_lock(repo, {"a.csv": b"1\n"})
    current = {"data": {"test_size": 0.2, "synthetic": {"n_samples": 100, "n_features": 20}}}
    assert stage_in_sync(repo / "dvc.lock", "prepare", current)
    flip_byte(prepared)
    with pytest.raises(TunedagError):
        verify_tracked(prepared, current)


def test_a_pydantic_config_is_read_with_paths_as_dvc_writes_them(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    cfg = load_config(REPO / "params.yaml", {"tracking.uri": "http://u:s3cret@127.0.0.1:5000"})
    out = tmp_path / "data" / "prepared" / "dataset.parquet"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"PAR1 data")
    stage = {
        "cmd": "tunedag prepare",
        "params": {
            "params.yaml": {
                "paths.prepared": "data/prepared/dataset.parquet",
                "data.test_size": 0.2,
                "data.path": None,
                "seed": 42,
                "tracking": {"uri": "http://u:s3cret@127.0.0.1:5000"},
            }
        },
        "outs": [{"path": "data/prepared/dataset.parquet", "hash": "md5", "md5": "0" * 32, "size": 9}],
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": stage}}))

    assert stage_in_sync(tmp_path / "dvc.lock", "prepare", cfg)  # the real password, not the JSON-redacted one
    with pytest.raises(TunedagError, match="'prepare'"):
        verify_tracked(out, cfg)
    assert verify_tracked(out, load_config(REPO / "params.yaml", {"seed": 7})) == "stale"


def test_a_dvc_lock_in_a_subfolder_records_paths_relative_to_it(repo: Path) -> None:
    sub = repo / "pipelines" / "one"
    (sub / "out").mkdir(parents=True)
    (sub / "out" / "m.json").write_bytes(b'{"a": 1}')
    stage = {"cmd": "x", "outs": [{"path": "out/m.json", "hash": "md5", "md5": md5(b'{"a": 1}'), "size": 8}]}
    (sub / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"s": stage}}))
    assert verify_tracked(sub / "out" / "m.json") == "match"
    (sub / "out" / "m.json").write_bytes(b'{"a": 2}')
    with pytest.raises(TunedagError, match="stage 's'"):
        verify_tracked(sub / "out" / "m.json")


def test_an_unreadable_dvc_lock_is_named(repo: Path) -> None:
    prepared = write_lock(repo, {"a.csv": b"1\n"})
    (repo / "dvc.lock").write_text("stages: [unclosed\n")
    with pytest.raises(TunedagError, match="dvc.lock"):
        verify_tracked(prepared)


# --- what cannot be read safely (issue 23, item 7) --------------------------------------------


def _within(seconds: float, fn, *args):
    """Run `fn(*args)` in a thread; fail (instead of hanging the suite) if it has not returned in `seconds`."""
    import threading

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} still running after {seconds} s: it hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-dev-zero"])
def test_a_fifo_or_a_device_among_the_dependencies_is_refused_by_name_never_read(repo: Path, kind: str) -> None:
    import os

    prepared = write_lock(repo, {"a.csv": b"1\n"})
    flip_byte(prepared)  # the dependencies are hashed only when the output differs from its record
    odd = repo / "raw" / "odd"
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to("/dev/zero")

    with pytest.raises(TunedagError) as info:
        _within(20, verify_tracked, prepared)

    message = str(info.value)
    assert str(odd) in message and "regular file" in message and "\n" not in message


def test_a_symlink_to_a_regular_file_is_followed_as_dvc_does(repo: Path) -> None:
    (repo / "elsewhere.csv").write_bytes(b"1\n")
    (repo / "raw").mkdir()
    (repo / "raw" / "a.csv").symlink_to(repo / "elsewhere.csv")
    copy = repo / "copy"
    copy.mkdir()
    (copy / "a.csv").write_bytes(b"1\n")

    assert dir_md5(repo / "raw") == dir_md5(copy)


@pytest.mark.parametrize("bound", ["HASH_MAX_BYTES", "HASH_MAX_S"])
def test_a_dependency_over_the_hashing_bounds_gives_no_verdict_with_a_warning(
    repo: Path, bound: str, monkeypatch, caplog
) -> None:
    import integrity.checks as integrity

    prepared = write_lock(repo, {"a.csv": b"1\n" * 100})
    flip_byte(prepared)
    monkeypatch.setattr(integrity, bound, 0)

    with caplog.at_level("WARNING", logger="integrity.checks"):
        assert verify_tracked(prepared) == "stale"

    assert "not checked against its record" in caplog.text and str(repo) in caplog.text


# --- the prepared file's own record (issue 23, item 8) ------------------------------------------


@pytest.fixture
def prepared_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project with the repository's params.yaml and raw data, prepared by the real prepare task."""
    import shutil

    from tasks.data import prepare_dataset

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        "params.yaml",
        {"data.source": "file", "data.name": None, "data.path": "data/raw/example_churn.csv", "data.target": "churn"},
    )
    prepare_dataset.fn(cfg)
    return cfg


def _change_one_value(path: Path) -> None:
    """Rewrite the prepared file with one feature value changed and its metadata kept: readable, and wrong."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    name = next(f.name for f in table.schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    values = table.column(name).to_pylist()
    values[3] = (values[3] or 0) + 1
    pq.write_table(
        table.set_column(table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type)), path
    )


def test_a_prepared_file_as_prepare_wrote_it_passes_and_gives_its_version(prepared_project) -> None:
    from integrity.checks import verify_prepared
    from tunedag.data import file_md5

    assert verify_prepared(prepared_project) == file_md5(prepared_project.paths.prepared)


@pytest.mark.parametrize("damage", ["value-changed", "byte-flipped"])
def test_a_changed_prepared_file_is_refused_even_with_a_new_file_in_data_raw_and_a_stale_dvc_lock(
    prepared_project, damage
) -> None:
    from integrity.checks import verify_prepared
    from tunedag.data import file_md5

    cfg, root = prepared_project, Path.cwd()
    (root / ".dvc").mkdir()
    prepared = cfg.paths.prepared
    stage = {
        "cmd": "tunedag prepare",
        "deps": [{"path": "data/raw", "hash": "md5", "md5": dir_md5(root / "data" / "raw"), "size": 1, "nfiles": 2}],
        "outs": [{"path": str(prepared), "hash": "md5", "md5": file_md5(prepared), "size": prepared.stat().st_size}],
    }
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": stage}}))
    (root / "data" / "raw" / "new_export.csv").write_text("a,b\n1,2\n")  # as the README invites: the lock entry is now stale
    if damage == "value-changed":
        _change_one_value(prepared)
    else:
        flip_byte(prepared, at=prepared.stat().st_size // 2)

    assert verify_tracked(prepared, cfg) == "stale"  # DVC's record gives no verdict: the file's own record must
    with pytest.raises(TunedagError) as info:
        verify_prepared(cfg)
    assert str(prepared) in str(info.value) and "paths.prepared" in str(info.value) and "prepare" in str(info.value)


@pytest.mark.parametrize("stage", ["train", "evaluate"])
def test_train_and_evaluate_refuse_a_changed_prepared_file_before_writing_anything(prepared_project, stage) -> None:
    from flows.evaluate import evaluate_flow
    from flows.train import train_flow

    summary = Path(prepared_project.paths.tune_summary)
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"study_name": "s", "parent_run_id": "r", "metric": "roc_auc", "best_value": 0.9}))
    _change_one_value(prepared_project.paths.prepared)
    before = sorted(Path.cwd().rglob("*"))

    with pytest.raises(TunedagError, match="paths.prepared"):
        {"train": train_flow, "evaluate": evaluate_flow}[stage].fn(prepared_project)

    assert sorted(Path.cwd().rglob("*")) == before
