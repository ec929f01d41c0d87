"""A model save that the kernel stops (a file-size limit: EFBIG, as a full disk gives ENOSPC) is seen as a write failure.

For a network (torch) the write is refused before it starts: torch's archive writer aborts the process on a cut
write, so the test checks that the process survives and says why.

The limit is set with `RLIMIT_FSIZE` in a subprocess (SIGXFSZ ignored, so the write returns the
error instead of killing the process): the real error travels through skops and MLflow's
re-raise ("skops does not support custom functions ...") to `stageio.files.write_failure`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.flows.conftest import REPO

# One interpreter for both saves (its start-up and imports are most of the cost): each model is first saved whole, which
# warms every import (no .pyc is written under the limit); then the soft limit is lowered for each cut save in turn.
SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from modelio.trust import skops_trusted_types
    from stageio.files import write_failure
    from modelio.mlflow_models import save_sklearn_model
    from modelio.torch_models import save_torch_model
    from tunedag.nets import TorchClassifier

    out = Path(sys.argv[1])
    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    trusted = skops_trusted_types(model)
    save_sklearn_model(model, out / "whole", trusted)
    net = TorchClassifier(width=256, epochs=1, random_state=0).fit(X.astype("float32"), y)
    save_torch_model(net, out / "torch-whole")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    for name, limit, save in [
        ("sklearn", 20_000, lambda: save_sklearn_model(model, out / "cut", trusted)),
        ("torch", 200_000, lambda: save_torch_model(net, out / "torch-cut")),
    ]:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            save()
        except Exception as exc:
            print(name, "RAISED", type(exc).__name__, str(exc)[:200], flush=True)
            print(name, "WHY", write_failure(exc), flush=True)
        else:
            print(name, "SAVED", flush=True)
    """
)


@pytest.fixture(scope="module")
def cut_saves(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("saves")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    return done, out


@pytest.mark.slow
def test_a_save_cut_by_the_kernel_is_reported_as_efbig_not_as_a_skops_limitation(cut_saves):
    done, out = cut_saves
    assert "sklearn " in done.stdout, done.stderr[-3000:]  # the script got as far as the cut save
    assert (out / "whole" / "model.skops").stat().st_size > 20_000, "the model must be larger than the limit"
    assert "sklearn RAISED MlflowException The sklearn model could not be serialized" in done.stdout, done.stdout
    assert "sklearn WHY File too large (EFBIG)" in done.stdout, done.stdout


@pytest.mark.slow
def test_a_network_save_the_file_size_limit_cannot_take_is_efbig_and_the_process_lives(cut_saves):
    done, out = cut_saves
    assert done.returncode == 0, done.stderr[-3000:]  # not 134: torch's writer never met the cut write
    assert sum(f.stat().st_size for f in (out / "torch-whole").rglob("*")) > 200_000, "the model must be larger than the limit"
    assert "torch WHY File too large (EFBIG)" in done.stdout, done.stdout
    assert not (out / "torch-cut" / "MLmodel").exists()


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
