"""The npz data source: image arrays flattened to pixel columns, bad files refused with the path named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunedag.config import DataConfig
from tunedag.data import load_source, prepare
from tunedag.errors import DataError


def write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("shape", [(60, 4, 5), (60, 2, 4, 5)], ids=["N-H-W", "N-C-H-W"])
def test_images_become_pixel_columns_in_c_order(tmp_path, shape) -> None:
    X = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    y = np.repeat(["cat", "dog", "eel"], 20)
    cfg = DataConfig(source="npz", path=write(tmp_path / "img.npz", X=X, y=y))

    frame, target = load_source(cfg, seed=0)

    assert target == "target" and list(frame.columns[:2]) == ["px0", "px1"]
    assert frame.shape == (60, X[0].size + 1)
    np.testing.assert_array_equal(frame.drop(columns="target").to_numpy(), X.reshape(60, -1).astype(float))
    prep = prepare(frame, target, cfg, 0, str(cfg.path))
    assert prep.task == "classification" and prep.categorical == ()


def test_a_cnn_trains_on_npz_images(tmp_path, make_config) -> None:
    from tunedag.objective import evaluate

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    X = rng.normal(size=(80, 1, 6, 6)) + y[:, None, None, None]  # class 1 is brighter
    path = write(tmp_path / "img.npz", X=X, y=y)
    cfg = make_config(
        {
            "data.source": "npz",
            "data.path": str(path),
            "model.estimator": "tunedag.nets.TorchClassifier",
            "model.fixed": {
                "architecture": "cnn",
                "image_shape": [1, 6, 6],
                "epochs": 3,
                "channels": 4,
                "batch_size": 8,
                "width": 8,
                "device": "cpu",
                "early_stopping_patience": None,
            },
            "search_space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
            "tune.metric": "accuracy",
        }
    )
    frame, target = load_source(cfg.data, cfg.seed)
    outcome = evaluate(cfg, prepare(frame, target, cfg.data, cfg.seed, "img.npz"), {"lr": 0.01})
    assert outcome.value > 0.7 and len(outcome.curves["val_loss"]) == 3


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"X": np.zeros((5, 2, 2))}, "must hold arrays named X and y"),
        ({"X": np.zeros((5, 2, 2)), "y": np.zeros(4)}, "got X"),
        ({"X": np.zeros(5), "y": np.zeros(5)}, "got X"),
    ],
    ids=["no-y", "lengths-differ", "one-dimensional-X"],
)
def test_bad_npz_files_are_refused_naming_the_path(tmp_path, arrays, words) -> None:
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=words) as info:
        load_source(DataConfig(source="npz", path=path), seed=0)
    assert str(path) in str(info.value)


def test_missing_and_unreadable_npz(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_source(DataConfig(source="npz", path=tmp_path / "none.npz"), seed=0)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_source(DataConfig(source="npz", path=broken), seed=0)
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, X=np.array([{"a": 1}] * 3, dtype=object), y=np.zeros(3))
    with pytest.raises(DataError, match="not a readable .npz"):  # allow_pickle=False: object arrays are refused
        load_source(DataConfig(source="npz", path=pickled), seed=0)
