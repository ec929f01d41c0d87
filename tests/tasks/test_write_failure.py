"""A model save that the kernel stops (a file-size limit: EFBIG, as a full disk gives ENOSPC) is seen as a write failure.

For a network (torch) the write is refused before it starts: torch's archive writer aborts the process on a cut
write, so the test checks that the process survives and says why.

The limit is set with `RLIMIT_FSIZE` in a subprocess (SIGXFSZ ignored, so the write returns the
error instead of killing the process): the real error travels through skops and MLflow's
re-raise ("skops does not support custom functions ...") to `tasks.outputs.write_failure`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.flows.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from modelio.trust import skops_trusted_types
    from tasks.outputs import write_failure
    from modelio.mlflow_models import save_sklearn_model

    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    trusted = skops_trusted_types(model)
    save_sklearn_model(model, Path(sys.argv[1]) / "whole", trusted)  # warms every import: no .pyc is written under the limit
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        save_sklearn_model(model, Path(sys.argv[1]) / "cut", trusted)
    except Exception as exc:
        print("RAISED", type(exc).__name__, str(exc)[:200])
        print("WHY", write_failure(exc))
    else:
        print("SAVED")
    """
)


def test_a_save_cut_by_the_kernel_is_reported_as_efbig_not_as_a_skops_limitation(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "whole" / "model.skops").stat().st_size > 20_000, "the model must be larger than the limit"
    assert "RAISED MlflowException The sklearn model could not be serialized" in done.stdout, done.stdout
    assert "WHY File too large (EFBIG)" in done.stdout, done.stdout


TORCH_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from sklearn.datasets import load_breast_cancer
    from modelio.mlflow_models import save_torch_model
    from tasks.outputs import write_failure
    from tunedag.nets import TorchClassifier

    X, y = load_breast_cancer(return_X_y=True)
    model = TorchClassifier(width=256, epochs=1, random_state=0).fit(X.astype("float32"), y)
    save_torch_model(model, Path(sys.argv[1]) / "whole")  # warms every import: no .pyc is written under the limit
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    try:
        save_torch_model(model, Path(sys.argv[1]) / "cut")
    except Exception as exc:
        print("WHY", write_failure(exc))
    else:
        print("SAVED")
    """
)


def test_a_network_save_the_file_size_limit_cannot_take_is_efbig_and_the_process_lives(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", TORCH_SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]  # not 134: torch's writer never met the cut write
    assert sum(f.stat().st_size for f in (tmp_path / "whole").rglob("*")) > 200_000, "the model must be larger than the limit"
    assert "WHY File too large (EFBIG)" in done.stdout, done.stdout
    assert not (tmp_path / "cut" / "MLmodel").exists()


def test_no_room_on_the_disk_is_enospc_before_anything_is_written(tmp_path, monkeypatch):
    import errno
    import shutil

    from modelio.room import ensure_room

    usage = shutil.disk_usage(tmp_path)
    ensure_room(tmp_path / "model", 1000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=500_000))
    with pytest.raises(OSError) as raised:
        ensure_room(tmp_path / "model", 1000)
    assert raised.value.errno == errno.ENOSPC and not (tmp_path / "model").exists()
