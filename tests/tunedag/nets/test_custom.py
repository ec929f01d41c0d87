"""A user's own training function (model.train_fn, tunedag.custom): the contract, pruning, the final run, the GAN."""

from __future__ import annotations

import pytest

from tests.tunedag.nets.custom_fns import TRAIN_FN
from tunedag.custom import final_run
from tunedag.objective import TrialFailed, TrialPruned, evaluate

PRUNED = {**TRAIN_FN, "tune.fidelity": {"kind": "epochs"}, "tune.pruner": "median"}


@pytest.fixture(scope="module")
def iris(prepare_sklearn):
    return prepare_sklearn("iris", seed=0)


def test_the_function_gets_params_and_splits_and_its_metrics_become_the_trial(make_config, iris) -> None:
    outcome = evaluate(make_config(TRAIN_FN), iris, {"C": 1.0})

    assert outcome.values == [outcome.metrics["my_score"]] and 0.7 < outcome.value <= 1.0
    assert outcome.metrics["rows"] == len(iris.xy("train")[0]) and outcome.metrics["stage_final"] == 0.0
    assert len(outcome.curves["val_score"]) == 3
    assert outcome.intermediate == [] and outcome.model is None  # no fidelity: nothing for the pruner


def test_reported_steps_feed_the_pruner_which_stops_the_function(make_config, iris) -> None:
    seen = []
    with pytest.raises(TrialPruned) as info:
        evaluate(make_config(PRUNED), iris, {"C": 1.0}, lambda step, value: seen.append(step) or step == 2)
    assert info.value.step == 2 and seen == [1, 2] and len(info.value.curves["val_score"]) == 2


def test_the_final_run_trains_on_train_and_val_and_scores_test(make_config, iris) -> None:
    run = final_run(make_config(TRAIN_FN), iris, {"C": 1.0})

    assert run.metrics["rows"] == len(iris.xy("train", "val")[0]) and run.metrics["stage_final"] == 1.0
    assert hasattr(run.model, "predict")


@pytest.mark.parametrize(("fn", "words"), [("no_metric", "without ['my_score']"), ("not_a_dict", "must return a dict")])
def test_a_function_breaking_the_contract_fails_the_trial(make_config, iris, fn, words) -> None:
    cfg = make_config({**TRAIN_FN, "model.train_fn": f"tests.tunedag.nets.custom_fns:{fn}"})
    with pytest.raises(TrialFailed, match=words.replace("[", r"\[")):
        evaluate(cfg, iris, {"C": 1.0})


def test_gan_example_on_a_tiny_budget(params_with, write_params, prepare_sklearn) -> None:
    """examples/gan_digits.yaml validates, and two GAN epochs give a finite, reproducible distance."""
    from tests.tunedag.conftest import REPO
    from tunedag.config import Config, load_config

    cfg = load_config(REPO / "examples" / "gan_digits.yaml")
    raw = cfg.model_dump(mode="python")
    raw["model"]["fixed"] = {"epochs": 2, "batch_size": 128}
    cfg = Config.model_validate(raw)
    prep = prepare_sklearn("digits", seed=cfg.seed)
    params = {"g_lr": 0.001, "d_lr": 0.001, "latent_dim": 8, "hidden": 64, "beta1": 0.5}

    first, second = evaluate(cfg, prep, params), evaluate(cfg, prep, params)

    assert first.value == second.value > 0 and first.curves == second.curves
    assert set(first.curves) == {"d_loss", "g_loss", "frechet_distance", "confidence", "coverage"}
    assert 0 <= first.metrics["coverage"] <= 1
    assert cfg.tune.resolved_direction == "minimize"


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    import numpy as np

    from examples.gan_digits import frechet_distance

    a = np.random.default_rng(0).normal(size=(400, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, a + 2) == pytest.approx(12, rel=1e-6)  # 3 dimensions x 2^2
