"""The code version on every run: HEAD's commit, `-dirty` for uncommitted code, not for what `dvc repro` writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tracking.provenance import git_commit


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in {"train.py": "print(1)\n", "dvc.lock": "schema: '2.0'\n", "params.yaml": "seed: 1\n"}.items():
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # from a subfolder too
    git_commit.cache_clear()
    yield tmp_path
    git_commit.cache_clear()


def test_a_clean_checkout_is_its_commit(repo):
    assert git_commit() == _git(repo, "rev-parse", "HEAD")


def test_dvc_lock_rewritten_by_a_reproduction_is_not_dirty_code(repo):
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (repo / "untracked.txt").write_text("new\n")
    assert git_commit() == _git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("changed", ["train.py", "params.yaml"])
def test_changed_code_or_params_are_dirty(repo, changed):
    (repo / changed).write_text("changed\n")
    assert git_commit() == _git(repo, "rev-parse", "HEAD") + "-dirty"


def test_outside_git_it_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    git_commit.cache_clear()
    try:
        assert git_commit() == "unknown"
    finally:
        git_commit.cache_clear()
