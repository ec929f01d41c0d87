"""modelio.skops_io: skops imported without torch, with the same trusted-type list as a plain import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LIST = (
    "import json, sys; from compat.skops import sklearn_type_names; names = sklearn_type_names(); "
    "print(json.dumps({'names': sorted(names), 'torch': 'torch' in sys.modules}))"
)


def _fresh(code: str) -> list[dict]:
    """Run `code` in a fresh interpreter; the last two lines it prints, read as JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]


# One fresh interpreter for each way of importing skops, shared by the tests below: each prints two lines,
# the first right after the import (what it lists and whether torch came with it), the second after more use.
@pytest.fixture(scope="module")
def light() -> list[dict]:
    return _fresh(
        "import modelio.skops_io, importlib, json, sys\n" + LIST + "\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from modelio.skops_io import skops_io\n"
        "m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])\n"
        "back = skops_io.loads(skops_io.dumps(m), trusted=skops_io.get_untrusted_types(data=skops_io.dumps(m)))\n"
        "torch_before = 'torch' in sys.modules\n"
        "importlib.import_module('sklearn.externals.array_api_compat.torch')\n"
        "print(json.dumps({'coef': back.coef_.tolist() == m.coef_.tolist(), 'before': torch_before, "
        "'after': 'torch' in sys.modules}))"
    )


@pytest.fixture(scope="module")
def plain() -> list[dict]:
    return _fresh(
        "import skops.io; " + LIST + "\n"
        "import io, json, zipfile\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "data = skops.io.dumps(StandardScaler().fit([[0.0], [1.0]]))\n"
        "print(json.dumps({'indented': b'\\n  ' in zipfile.ZipFile(io.BytesIO(data)).read('schema.json')}))"
    )


@pytest.mark.slow
def test_light_import_lists_the_same_estimators_without_torch(light, plain):
    assert plain[0]["torch"], "a plain skops import no longer imports torch: modelio.skops_io can go"
    assert not light[0]["torch"]
    assert light[0]["names"] == plain[0]["names"] and len(light[0]["names"]) > 100


@pytest.mark.slow
def test_the_refused_package_imports_afterwards_and_skops_round_trips(light):
    assert light[1] == {"coef": True, "before": False, "after": True}


@pytest.mark.slow
def test_plain_skops_still_indents_its_schema(plain):
    assert plain[1]["indented"], "skops writes a compact schema itself now: CompactJson in modelio.skops_io can go"


def test_the_schema_is_written_compact_and_reads_back_the_same():
    import io
    import re
    import zipfile

    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from compat.skops import writer_module
    from modelio.skops_io import CompactJson, skops_io

    persist = writer_module()
    X = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 0.5], [3.0, 2.0]])
    model = make_pipeline(
        ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1])]), LogisticRegression()
    ).fit(X, [0, 0, 1, 1])
    assert persist.json is CompactJson
    compact = skops_io.dumps(model)
    persist.json = json
    try:
        indented = skops_io.dumps(model)
    finally:
        persist.json = CompactJson

    def schema(data: bytes) -> bytes:
        return zipfile.ZipFile(io.BytesIO(data)).read("schema.json")

    def arrays_renamed(data: bytes) -> str:  # object ids and the array files named after them differ between dumps
        text = json.dumps(json.loads(schema(data)), sort_keys=True)
        return re.sub(r'"\d+\.npy"', '"array.npy"', re.sub(r'"__id__": \d+', '"__id__": 0', text))

    assert b"\n" not in schema(compact) and b"\n" in schema(indented)
    assert arrays_renamed(compact) == arrays_renamed(indented)
    back = skops_io.loads(compact, trusted=skops_io.get_untrusted_types(data=compact))
    assert back.predict_proba(X).tolist() == model.predict_proba(X).tolist()
