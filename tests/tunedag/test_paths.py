"""Output paths: inside the project only, and a folder is replaced only when tunedag wrote it (issue 23, item 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.commands import TUNEDAG
from tunedag.config import load_config
from tunedag.errors import ConfigError
from tunedag.paths import MARKER, check_replaceable, clear_staging, inside_project, replace_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _raw_files(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted((project / "data" / "raw").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("value", ["../elsewhere", "models/../../elsewhere", "/tmp/tunedag-elsewhere", "."])
def test_an_output_path_outside_the_project_is_refused_at_config_load_naming_the_key(project, value):
    with pytest.raises(ConfigError) as info:
        load_config("params.yaml", {"paths.single_model_dir": value})

    message = str(info.value)
    assert "paths.single_model_dir" in message and value in message and "\n" not in message


def test_a_symlink_leading_out_of_the_project_is_outside_it(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (project / "models").mkdir()
    (project / "models" / "link").symlink_to(outside)

    with pytest.raises(ValueError, match="paths.model_dir"):
        inside_project(Path("models/link/final"), "paths.model_dir")
    assert inside_project(Path("models/final"), "paths.model_dir") == Path("models/final")
    assert (
        load_config("params.yaml", {"paths.model_dir": str(project / "models" / "abs")}).paths.model_dir
        == project / "models" / "abs"
    )


def test_a_folder_holding_files_tunedag_did_not_write_is_never_replaced(project):
    before = _raw_files(project)

    with pytest.raises(ConfigError) as info:
        check_replaceable(Path("data/raw"), "paths.single_model_dir")
    staging = clear_staging(Path("data/raw"))
    staging.mkdir()
    with pytest.raises(ConfigError):
        replace_folder(staging, Path("data/raw"), "paths.single_model_dir")

    assert "paths.single_model_dir" in str(info.value) and "data/raw" in str(info.value)
    assert _raw_files(project) == before
    with pytest.raises(ConfigError, match="paths.model_dir"):  # a file is not a folder tunedag wrote either
        check_replaceable(Path("params.yaml"), "paths.model_dir")


def test_a_folder_tunedag_wrote_is_replaced_and_carries_the_marker(project):
    target = Path("models/final")
    for content in ("first", "second"):
        staging = clear_staging(target)
        staging.mkdir(parents=True)
        (staging / "model.txt").write_text(content)
        replace_folder(staging, target, "paths.model_dir")

    assert (target / "model.txt").read_text() == "second" and (target / MARKER).is_file()
    assert not clear_staging(target).exists()
    check_replaceable(Path("models/empty-folder-is-fine"), "paths.model_dir")


def test_a_model_folder_holding_user_files_is_refused_at_config_load(project):
    with pytest.raises(ConfigError) as info:
        load_config("params.yaml", {"paths.single_model_dir": "data/raw"})

    assert "paths.single_model_dir" in str(info.value) and "data/raw" in str(info.value) and "\n" not in str(info.value)
    (project / "models" / "final").mkdir(parents=True)
    (project / "models" / "final" / MARKER).write_text("")
    (project / "models" / "final" / "MLmodel").write_text("")
    assert load_config("params.yaml").paths.model_dir == Path("models/final")  # one tunedag wrote: accepted


@pytest.mark.slow
@pytest.mark.parametrize("value", ["data/raw", "../elsewhere"])
def test_the_train_command_refuses_with_exit_2_and_data_raw_survives(project, value):
    Path("reports/tune").mkdir(parents=True)
    Path("reports/tune/summary.json").write_text(json.dumps({"study_name": "s", "parent_run_id": "r"}))
    before = _raw_files(project)

    done = subprocess.run(
        [*TUNEDAG, "train", "--set", f"paths.single_model_dir={value}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )

    message = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and message.startswith("tunedag: error:") and "paths.single_model_dir" in message, done.stderr
    assert "Traceback" not in done.stderr
    assert _raw_files(project) == before and not (project / "models").exists() and not (project.parent / "elsewhere").exists()
