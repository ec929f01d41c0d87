"""Contract of the torch estimators (tunedag.nets), run over every built-in architecture and a user factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor

from tunedag.nets import TorchClassifier, TorchRegressor

FAST = {"epochs": 4, "width": 16, "batch_size": 32, "random_state": 0, "early_stopping_patience": None, "device": "cpu"}

CASES = [
    pytest.param(
        TorchClassifier,
        {"architecture": "mlp", "hidden_layers": 2, "batch_norm": True, "dropout": 0.1},
        "digits",
        id="mlp-classifier",
    ),
    pytest.param(
        TorchRegressor, {"architecture": "mlp", "hidden_layers": 1, "activation": "gelu"}, "regression", id="mlp-regressor"
    ),
    pytest.param(
        TorchClassifier,
        {"architecture": "cnn", "image_shape": [1, 8, 8], "hidden_layers": 2, "channels": 4, "batch_norm": True},
        "digits",
        id="cnn-classifier",
    ),
    pytest.param(
        TorchClassifier,
        {"module_factory": "tests.tunedag.nets.factories:tiny", "module_kwargs": {"scale": 2.0}},
        "digits",
        id="factory-classifier",
    ),
]


@pytest.fixture
def case(request, digits, regression):
    cls, params, data = request.param
    return cls(**{**FAST, **params}), (digits if data == "digits" else regression)


every_architecture = pytest.mark.parametrize("case", [pytest.param(p.values, id=p.id) for p in CASES], indirect=True)


@every_architecture
def test_fit_predict_shapes(case) -> None:
    est, (X, y) = case
    assert est.fit(X, y) is est
    pred = est.predict(X)
    assert pred.shape == (len(X),) and est.n_features_in_ == X.shape[1]
    if is_classifier(est):
        assert set(pred) <= set(est.classes_) and list(est.classes_) == sorted(set(y))
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), len(est.classes_))
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
        assert (proba.argmax(1) == np.searchsorted(est.classes_, pred)).all()
    else:
        assert is_regressor(est) and abs(pred.mean() - y.mean()) < 3 * y.std()


@every_architecture
def test_on_epoch_is_called_once_per_epoch_with_the_metrics(case) -> None:
    est, (X, y) = case
    calls = []
    est.fit(X, y, on_epoch=lambda epoch, metrics: calls.append((epoch, metrics)))
    metric = "val_accuracy" if is_classifier(est) else "val_rmse"
    assert [e for e, _ in calls] == [1, 2, 3, 4]
    assert all(set(m) == {"train_loss", "val_loss", metric, "lr"} for _, m in calls)
    assert all(np.isfinite(list(m.values())).all() for _, m in calls)
    assert est.history_ == [m for _, m in calls]
    assert est.stopped_epoch_ == 4 and 1 <= est.best_epoch_ <= 4


class Stop(Exception):
    pass


@every_architecture
def test_an_exception_from_on_epoch_propagates_and_a_later_fit_is_unharmed(case) -> None:
    est, (X, y) = case
    reference = clone(est).fit(X, y).history_

    def stop_at_2(epoch, metrics):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        est.fit(X, y, on_epoch=stop_at_2)
    assert not hasattr(est, "module_")  # left as before the call: unfitted
    assert est.fit(X, y).history_ == reference


@every_architecture
def test_same_seed_same_history_other_seed_other_history(case) -> None:
    est, (X, y) = case
    first = clone(est).fit(X, y)
    second = clone(est).fit(X, y)
    assert first.history_ == second.history_
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    assert clone(est).set_params(random_state=1).fit(X, y).history_ != first.history_


@every_architecture
def test_clone_copies_parameters_not_the_fit(case) -> None:
    est, (X, y) = case
    est.fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "module_")


def test_fit_leaves_the_global_rng_as_it_was(digits) -> None:
    X, y = digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TorchClassifier(**FAST).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_stops_an_overfitting_net_and_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 20)), rng.integers(0, 2, 80)  # labels are noise: validation loss only rises
    est = TorchClassifier(
        width=128, lr=0.01, epochs=60, early_stopping_patience=3, validation_fraction=0.25, random_state=0, device="cpu"
    ).fit(X, y)
    assert est.stopped_epoch_ < 60
    assert est.stopped_epoch_ == est.best_epoch_ + 3
    losses = [h["val_loss"] for h in est.history_]
    assert losses[est.best_epoch_ - 1] == min(losses)


@pytest.mark.parametrize(("optimizer", "lr", "beta"), [("sgd", 0.01, 0.001), ("adam", 0.001, 1e-6), ("adamw", 0.001, 1e-6)])
def test_hypergradient_descent_moves_the_learning_rate(digits, optimizer, lr, beta) -> None:
    X, y = digits
    est = TorchClassifier(**{**FAST, "epochs": 3}, optimizer=optimizer, lr=lr, hypergradient_beta=beta).fit(X, y)
    rates = [h["lr"] for h in est.history_]
    assert len(set(rates)) == 3 and all(r > 0 for r in rates)
    assert est.final_lr_ == rates[-1] != lr
    fixed = TorchClassifier(**{**FAST, "epochs": 3}, optimizer=optimizer, lr=lr).fit(X, y)
    assert {h["lr"] for h in fixed.history_} == {lr}


@pytest.mark.parametrize("schedule", ["cosine", "step", "exponential"])
def test_learning_rate_schedules_lower_the_rate(digits, schedule) -> None:
    X, y = digits
    rates = [h["lr"] for h in TorchClassifier(**FAST, lr_schedule=schedule).fit(X, y).history_]
    assert rates[0] == 1e-3 and rates[-1] < rates[0] and rates == sorted(rates, reverse=True)


BAD = [
    pytest.param({"optimizer": "rmsprop"}, "optimizer 'rmsprop'", id="optimizer"),
    pytest.param({"architecture": "cnn", "image_shape": [1, 4, 4]}, "image_shape", id="image-shape-size"),
    pytest.param({"architecture": "cnn"}, "image_shape", id="cnn-without-image-shape"),
    pytest.param({"activation": "swish"}, "activation 'swish'", id="activation"),
    pytest.param({"hypergradient_beta": 0.001, "lr_schedule": "cosine"}, "lr_schedule", id="hypergradient-with-schedule"),
    pytest.param({"early_stopping_patience": 3, "validation_fraction": 0.0}, "validation_fraction", id="patience-without-val"),
    pytest.param({"module_factory": "tests.tunedag.nets.factories:not_a_module"}, "not a torch.nn.Module", id="factory"),
    pytest.param({"module_factory": "tests.tunedag.nets.nowhere:f"}, "cannot be imported", id="factory-import"),
    pytest.param({"device": "tpu"}, "device 'tpu'", id="device"),
]


@pytest.mark.parametrize(("params", "words"), BAD)
def test_bad_parameters_are_refused_at_fit_naming_them(digits, params, words) -> None:
    X, y = digits
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        TorchClassifier(**{**FAST, **params}).fit(X, y)


def test_no_validation_split_reports_training_loss_only(digits) -> None:
    X, y = digits
    est = TorchClassifier(**{**FAST, "validation_fraction": 0.0}).fit(X, y)
    assert set(est.history_[0]) == {"train_loss", "lr"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_auto_device_trains_on_the_gpu_and_predicts_like_cpu(digits) -> None:
    X, y = digits
    gpu = TorchClassifier(**{**FAST, "device": "auto"}).fit(X, y)
    assert gpu.device_.type == "cuda" and next(gpu.module_.parameters()).is_cuda
    assert gpu.predict_proba(X).shape == (len(X), 10)
    again = TorchClassifier(**{**FAST, "device": "cuda"}).fit(X, y)
    np.testing.assert_allclose([h["train_loss"] for h in again.history_], [h["train_loss"] for h in gpu.history_], rtol=1e-4)
