"""The journal storage with and without a sync per write: same records, shared across processes, a torn tail skipped."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

from studies.storage import UnsyncedJournalFile, build_storage


@pytest.fixture
def fsyncs(monkeypatch):
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def _study(path, sync: bool) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=build_storage(str(path), sync), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    return study


@pytest.mark.parametrize("sync", [True, False], ids=["synced", "unsynced"])
def test_both_journals_hold_the_same_study_and_only_the_synced_one_fsyncs(tmp_path, fsyncs, sync):
    study = _study(tmp_path / "s.journal", sync)

    assert isinstance(
        build_storage(str(tmp_path / "s.journal"), sync)._backend, JournalFileBackend if sync else UnsyncedJournalFile
    )
    assert bool(fsyncs) is sync
    plain = optuna.load_study(study_name="s", storage=build_storage(str(tmp_path / "s.journal")))  # Optuna's own reader
    assert [t.params for t in plain.trials] == [t.params for t in study.trials] and len(plain.trials) == 5


def test_another_process_reads_unsynced_writes_at_once(tmp_path):
    _study(tmp_path / "s.journal", sync=False)
    code = (
        "import sys, optuna; from studies.storage import build_storage; "
        "print(len(optuna.load_study(study_name='s', storage=build_storage(sys.argv[1])).trials))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.journal")], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "5"


@pytest.mark.parametrize("sync", [True, False], ids=["synced", "unsynced"])
def test_a_torn_last_write_is_cut_off_and_the_study_goes_on(tmp_path, sync):
    path = tmp_path / "s.journal"
    _study(path, sync)
    whole = path.read_bytes()
    with open(path, "ab") as f:  # what a crash can leave of a write: part of a line
        f.write(b'{"op_code": 4, "worker_id"')

    study = optuna.load_study(study_name="s", storage=build_storage(str(path), sync))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)

    assert path.read_bytes().startswith(whole)
    assert len(optuna.load_study(study_name="s", storage=build_storage(str(path))).trials) == 7


def test_a_journal_that_is_only_a_torn_line_is_emptied_and_one_that_ends_whole_is_untouched(tmp_path):
    torn, whole = tmp_path / "torn.journal", tmp_path / "whole.journal"
    torn.write_bytes(b'{"op_code": 0, "worker_id": "w", "study_na')
    _study(whole, sync=False)
    before = whole.read_bytes()

    build_storage(str(torn), False), build_storage(str(whole), False)

    assert torn.read_bytes() == b"" and whole.read_bytes() == before
