"""PyTorch model folders load without unpickling anything from them (issue 24): tunedag's own do, crafted ones are refused.

Each crafted folder is first shown to run its code when MLflow loads it with its defaults, so a
refusal here is the loader's doing, not a folder that was harmless anyway.
"""

from __future__ import annotations

import contextlib
import shutil
import zipfile
from pathlib import Path

import mlflow.pytorch
import numpy as np
import pytest
import torch
import yaml

from modelio.torch_models import save_torch_model
from modelio.torch_trust import PICKLE_SWITCH
from tasks.evaluation import load_final_model
from tests.modelio.test_torch_models import fitted
from tests.support.hostile import MARKER_ENV, Tripwire
from tunedag.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, object, object]:
    """A regressor tunedag saved (pt2), with the model and rows to predict."""
    torch.set_num_threads(1)
    model, X = fitted("diabetes", "tunedag.nets.TorchRegressor", {"hidden_layers": 1})
    folder = tmp_path_factory.mktemp("torch") / "model"
    save_torch_model(model, folder)
    return folder, model, X


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "PWNED"))
    monkeypatch.delenv(PICKLE_SWITCH, raising=False)  # MLflow's default: pickle allowed
    return tmp_path / "PWNED"


def _copy(saved_folder: Path, dest: Path) -> Path:
    shutil.copytree(saved_folder, dest)
    return dest


def _pickled_module(folder: Path) -> None:
    """Replace the export by a pickled `model.pth`, as MLflow's pickle format writes it."""
    (folder / "data" / "model.pt2").unlink()
    torch.save(Tripwire(), folder / "data" / "model.pth")
    (folder / "data" / "pickle_module_info.txt").write_text("pickle")


def _pickle_in_archive(folder: Path) -> None:
    """Swap the archive's sample inputs (a tensor record) for a pickle of the hostile class."""
    archive = folder / "data" / "model.pt2"
    records = {}
    with zipfile.ZipFile(archive) as zf:
        records = {name: zf.read(name) for name in zf.namelist()}
    (name,) = [n for n in records if n.endswith("sample_inputs/model.pt")]
    buffer = folder / "evil.pt"
    torch.save(((Tripwire(),), {}), buffer)
    records[name] = buffer.read_bytes()
    buffer.unlink()
    with zipfile.ZipFile(archive, "w") as zf:
        for key, value in records.items():
            zf.writestr(key, value)


def test_a_model_tunedag_saved_loads_and_predicts_as_before(saved, marker, monkeypatch) -> None:
    folder, model, X = saved
    monkeypatch.setenv(PICKLE_SWITCH, "true")  # the user's setting is put back afterwards
    loaded = load_final_model(folder)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-5, atol=1e-5)
    import os

    assert os.environ[PICKLE_SWITCH] == "true"


@pytest.mark.parametrize(
    ("craft", "names"),
    [(_pickled_module, ["model.pth", "pickled"]), (_pickle_in_archive, ["sample_inputs/model.pt", "cannot be loaded safely"])],
    ids=["pickled-module", "pickle-inside-the-export"],
)
def test_a_crafted_pytorch_folder_runs_under_mlflow_defaults_and_is_refused_by_tunedag(saved, marker, tmp_path, craft, names):
    folder = _copy(saved[0], tmp_path / "crafted")
    craft(folder)
    with pytest.raises(ConfigError) as refused:
        load_final_model(folder)
    assert not marker.exists(), "code from the model folder ran"
    assert str(folder) in str(refused.value) and all(n in str(refused.value) for n in names), refused.value
    with contextlib.suppress(Exception):  # MLflow's default loader runs the class (then may fail on what it built)
        mlflow.pytorch.load_model(str(folder))
    assert marker.exists(), "the crafted folder is harmless: the refusal above proves nothing"


def test_a_folder_whose_mlmodel_ships_code_or_points_outside_is_refused(saved, marker, tmp_path) -> None:
    for key, value, name in [("code", "code", "ships code"), ("model_data", "../elsewhere", "outside the folder")]:
        folder = _copy(saved[0], tmp_path / key)
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        mlmodel["flavors"]["pytorch"][key] = value
        (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
        with pytest.raises(ConfigError, match=name):
            load_final_model(folder)
    folder = _copy(saved[0], tmp_path / "damaged")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    del mlmodel["flavors"]["pytorch"]["pytorch_version"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ConfigError, match="not a PyTorch model tunedag can read"):  # one paragraph, not a KeyError
        load_final_model(folder)
