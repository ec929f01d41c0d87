"""tunedag.skops_io: skops imported without torch, with the same trusted-type list as a plain import."""

from __future__ import annotations

import json
import subprocess
import sys

LIST = ("import json, sys; from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names; "
        "print(json.dumps({'names': sorted(names), 'torch': 'torch' in sys.modules}))")


def _fresh(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_light_import_lists_the_same_estimators_without_torch():
    light = _fresh("import tunedag.skops_io; " + LIST)
    plain = _fresh("import skops.io; " + LIST)
    assert plain["torch"], "a plain skops import no longer imports torch: tunedag.skops_io can go"
    assert not light["torch"]
    assert light["names"] == plain["names"] and len(light["names"]) > 100


def test_the_refused_package_imports_afterwards_and_skops_round_trips():
    out = _fresh("import tunedag.skops_io, importlib, json, sys\n"
                 "from sklearn.linear_model import LogisticRegression\n"
                 "from tunedag.skops_io import skops_io\n"
                 "m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])\n"
                 "back = skops_io.loads(skops_io.dumps(m), trusted=skops_io.get_untrusted_types(data=skops_io.dumps(m)))\n"
                 "torch_before = 'torch' in sys.modules\n"
                 "importlib.import_module('sklearn.externals.array_api_compat.torch')\n"
                 "print(json.dumps({'coef': back.coef_.tolist() == m.coef_.tolist(), 'before': torch_before, "
                 "'after': 'torch' in sys.modules}))")
    assert out == {"coef": True, "before": False, "after": True}
