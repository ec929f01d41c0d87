"""The slice plot's log axes (an int range such as n_estimators 50-400, a learning rate) have readable tick labels."""

from __future__ import annotations

import optuna
import pytest

from reporting import render


@pytest.fixture(scope="module")
def slice_png():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        n = trial.suggest_int("n_estimators", 50, 400, log=True)
        rate = trial.suggest_float("learning_rate", 0.01, 0.5, log=True)
        trial.suggest_categorical("max_depth", [None, 4, 8, 16])
        return n / 400 + rate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=25)
    (figure,) = [f for f in render.build_figures(study, ["roc_auc"]).figures if f.name == "slice"]
    figure.png.canvas.draw()
    return figure.png


@pytest.mark.parametrize("param", ["n_estimators", "learning_rate"])
def test_log_axis_tick_labels_are_plain_numbers_that_do_not_overlap(slice_png, param):
    (ax,) = [a for a in slice_png.axes if a.get_xlabel() == param]
    assert ax.get_xscale() == "log"
    low, high = sorted(ax.get_xlim())
    renderer = slice_png.canvas.get_renderer()
    shown = [
        t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text() and low <= t.get_position()[0] <= high
    ]
    texts = [t.get_text() for t in shown]
    assert len(shown) >= 2, texts
    assert [float(x) for x in texts] == sorted(float(x) for x in texts), "plain numbers (no 6x10^1), in order"
    boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), f"{param}: tick labels overlap: {texts}"
