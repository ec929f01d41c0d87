"""A model save that the kernel stops (a file-size limit: EFBIG, as a full disk gives ENOSPC) is seen as a write failure.

The limit is set with `RLIMIT_FSIZE` in a subprocess (SIGXFSZ ignored, so the write returns the
error instead of killing the process): the real error travels through skops and MLflow's
re-raise ("skops does not support custom functions ...") to `tasks.outputs.write_failure`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
