"""Torch networks saved as MLflow PyTorch models (modelio.mlflow_models): loadable with mlflow.pyfunc, same predictions."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow.pyfunc
import numpy as np
import pytest
import torch

from modelio.torch_models import load_torch_model, save_torch_model
from tunedag.config import DataConfig, PreprocessConfig
from tunedag.data import load_source, prepare
from tunedag.errors import ConfigError
from tunedag.estimators import build_model
from tunedag.nets import is_torch_model

FAST = {"epochs": 2, "width": 16, "random_state": 0, "device": "cpu", "early_stopping_patience": None}
# MLflow's pyfunc wrapper hands torch a read-only view of the input; it never writes to it.
pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fitted(name: str, estimator: str, fixed: dict, preprocess: PreprocessConfig = PreprocessConfig()):
    cfg = DataConfig(source="sklearn", name=name)
    frame, target = load_source(cfg, 0)
    prep = prepare(frame, target, cfg, 0, name)
    X, y = prep.xy("train")
    model = build_model(estimator, {**FAST, **fixed}, {}, prep.numeric, prep.categorical, preprocess).fit(X, y)
    X_test, y_test = prep.xy("test")
    X_test = X_test.copy()
    X_test.iloc[0, 3] = np.nan  # imputed inside the saved model as in the pipeline
    return model, X_test


CASES = [
    pytest.param(
        "digits",
        "tunedag.nets.TorchClassifier",
        {"architecture": "cnn", "image_shape": [1, 8, 8], "channels": 4, "batch_norm": True, "dropout": 0.2},
        PreprocessConfig(),
        id="cnn-classifier",
    ),
    pytest.param(
        "diabetes",
        "tunedag.nets.TorchRegressor",
        {"hidden_layers": 1},
        PreprocessConfig(numeric_impute="mean", scale=False),
        id="mlp-regressor-no-scaling",
    ),
]


@pytest.mark.parametrize(("name", "estimator", "fixed", "preprocess"), CASES)
def test_saved_model_predicts_through_pyfunc_like_the_pipeline(tmp_path, name, estimator, fixed, preprocess) -> None:
    model, X = fitted(name, estimator, fixed, preprocess)
    assert is_torch_model(model)

    save_torch_model(model, tmp_path / "m", input_example=X.head(5))
    out = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)  # a float64 DataFrame, as prepared

    expected = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
    np.testing.assert_allclose(np.asarray(out).reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
    loaded = load_torch_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X)) if hasattr(
        model, "classes_"
    ) else np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-4)
    assert hasattr(loaded, "predict_proba") == hasattr(model, "predict_proba")
    requirements = (tmp_path / "m" / "requirements.txt").read_text()
    assert f"torch=={torch.__version__}" in requirements


def test_final_stage_save_dispatches_torch_models(tmp_path) -> None:
    from tasks.training import _save

    model, X = fitted("digits", "tunedag.nets.TorchClassifier", {})
    cfg = SimpleNamespace(model=SimpleNamespace(trusted_types=[]))
    _save(cfg, model, tmp_path / "final", X, "paths.model_dir")
    assert (tmp_path / "final" / "MLmodel").read_text().count("pytorch") >= 1
    np.testing.assert_array_equal(load_torch_model(tmp_path / "final").predict(X), model.predict(X))


def test_categorical_preprocessing_cannot_travel_with_a_network(mixed_frame) -> None:
    from sklearn.compose import ColumnTransformer

    from tunedag.nets import to_inference_module

    X = mixed_frame.drop(columns="label")
    model = build_model("tunedag.nets.TorchClassifier", FAST, {}, ["num", "count"], ["color"], PreprocessConfig())
    model.fit(X, mixed_frame["label"])
    assert isinstance(model[0], ColumnTransformer)
    with pytest.raises(ConfigError, match="categorical"):
        to_inference_module(model)


@pytest.fixture
def mixed_frame():
    from tests.tunedag.conftest import _mixed_frame

    return _mixed_frame()
