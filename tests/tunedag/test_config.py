"""params.yaml validation (tunedag.config) and the shared CLI entry (flows._cli).

Every bad case starts from the repository's real params.yaml and changes one thing, so the
test fails if that one thing stops being refused or stops being named in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows._cli import execute
from tunedag.config import CategoricalParam, Config, FloatParam, IntParam, load_config
from tunedag.errors import ConfigError, TunedagError

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def assert_names_key(message: str, key: str) -> None:
    """The message names `key`, as `a.b.c` or, from a check across fields of a section, `a.b: c`."""
    section, _, field = key.rpartition(".")
    assert key in message or (section and f"{section}: {field}" in message), f"{key!r} not named in: {message}"


def assert_one_paragraph(message: str) -> None:
    assert message.strip() and "\n" not in message.strip(), f"not one paragraph: {message!r}"


# --- the real file -----------------------------------------------------------------------


def test_repository_params_yaml_loads() -> None:
    cfg = load_config(PARAMS)

    assert cfg.model.estimator == "sklearn.ensemble.RandomForestClassifier"
    assert cfg.tune.metric == "roc_auc"
    assert cfg.tune.resolved_direction == "maximize"
    assert list(cfg.search_space) == ["n_estimators", "max_depth", "min_samples_leaf", "max_features", "criterion"]
    assert isinstance(cfg.search_space["n_estimators"], IntParam) and cfg.search_space["n_estimators"].log
    assert isinstance(cfg.search_space["max_features"], CategoricalParam)
    assert cfg.search_space["max_features"].choices == ["sqrt", "log2", 0.5]


def test_config_is_frozen() -> None:
    cfg = load_config(PARAMS)
    with pytest.raises(ValidationError):
        cfg.tune.n_trials = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("accuracy", "maximize"), ("roc_auc", "maximize"), ("log_loss", "minimize")],
)
def test_direction_is_derived_from_the_metric(params_with: Callable[..., dict], write_params, metric, direction) -> None:
    cfg = load_config(write_params(params_with({"tune.metric": metric})))
    assert cfg.tune.resolved_direction == direction


def test_an_explicit_direction_that_agrees_is_accepted(params_with, write_params) -> None:
    cfg = load_config(write_params(params_with({"tune.metric": "log_loss", "tune.direction": "minimize"})))
    assert cfg.tune.resolved_direction == "minimize"


# --- one change at a time, each refused with the key named -------------------------------

BAD_CASES = [
    # (changes to the real params.yaml, the key the message must name, other words it must hold)
    pytest.param({"extras": 1}, "extras", ["unknown key"], id="unknown-top-level-key"),
    pytest.param({"tune.n_trails": 5}, "tune.n_trails", ["unknown key"], id="typo-in-tune"),
    pytest.param({"model.preprocess.scael": False}, "model.preprocess.scael", ["unknown key"], id="typo-in-preprocess"),
    pytest.param(
        {"search_space.max_depth": {"type": "int", "low": 2, "high": 16, "lgo": True}},
        "search_space.max_depth.lgo",
        ["unknown key"],
        id="typo-in-a-param",
    ),
    pytest.param({"tune.n_trials": "ten"}, "tune.n_trials", ["integer"], id="n_trials-not-a-number"),
    pytest.param({"tune.n_trials": 0}, "tune.n_trials", [], id="n_trials-zero"),
    pytest.param({"tune.timeout": -5}, "tune.timeout", [], id="negative-timeout"),
    pytest.param({"tune.sampler": "bayes"}, "tune.sampler", [], id="unknown-sampler"),
    # search strategies (tune.sampler / pruner / fidelity / objectives / select / enqueue / final.ensemble)
    pytest.param(
        {"tune.sampler": {"name": "tpe", "n_startup": 3}},
        "tune.sampler.tpe.n_startup",
        ["unknown key"],
        id="typo-in-sampler-option",
    ),
    pytest.param({"tune.sampler": {"name": "nsga2", "population_size": 1}}, "population_size", [], id="nsga2-population-of-one"),
    pytest.param({"tune.pruner": "median"}, "tune", ["fidelity"], id="pruner-without-fidelity"),
    pytest.param({"tune.pruner": "magic"}, "tune.pruner", [], id="unknown-pruner"),
    pytest.param({"tune.objectives": ["speed"]}, "tune.objectives", ["predict_latency_ms"], id="unknown-objective"),
    pytest.param({"tune.objectives": ["roc_auc"]}, "tune", ["repeat"], id="objective-repeats-metric"),
    pytest.param(
        {"tune.objectives": ["model_size_kb"], "tune.pruner": "median", "tune.fidelity.kind": "train_fraction"},
        "tune",
        ["single objective"],
        id="pruning-with-two-objectives",
    ),
    pytest.param(
        {"tune.objectives": ["model_size_kb"], "tune.sampler": "cmaes"},
        "tune",
        ["single objective"],
        id="cmaes-with-two-objectives",
    ),
    pytest.param(
        {"tune.objectives": ["model_size_kb"], "tune.select": {"rule": "weighted", "weights": [1.0]}},
        "tune",
        ["select.weights"],
        id="weights-of-the-wrong-length",
    ),
    pytest.param({"tune.sampler": "manual"}, "tune", ["tune.enqueue"], id="manual-without-configurations"),
    pytest.param(
        {"tune.fidelity": {"kind": "train_fraction", "fractions": [0.5, 0.25, 1.0]}},
        "tune.fidelity",
        ["fractions"],
        id="fractions-not-rising",
    ),
    pytest.param({"tune.fidelity.kind": "folds"}, "data.cv_folds", [], id="fold-fidelity-without-cv"),
    pytest.param(
        {
            "tune.fidelity.kind": "ensemble_size",
            "model.estimator": "sklearn.svm.SVC",
            "model.fixed": {},
            "search_space": {"C": {"type": "float", "low": 0.1, "high": 10}},
        },
        "warm_start",
        [],
        id="ensemble-size-without-warm-start",
    ),
    pytest.param(
        {"search_space.gamma_like": {"type": "float", "low": 0.1, "high": 1.0, "when": {"kernel": ["rbf"]}}},
        "search_space.gamma_like",
        [],
        id="when-names-an-unknown-parent",
    ),
    pytest.param(
        {"search_space.max_samples": {"type": "float", "low": 0.1, "high": 1.0, "when": {"criterion": ["log_loss"]}}},
        "search_space.max_samples",
        ["choices"],
        id="when-value-outside-the-parent-choices",
    ),
    pytest.param(
        {"model.families": {"rf": {"estimator": "sklearn.ensemble.RandomForestClassifier"}}},
        "model",
        ["either"],
        id="estimator-and-families",
    ),
    pytest.param(
        {
            "tune.sampler": "grid",
            "model.estimator": None,
            "model.fixed": {},
            "search_space": {},
            "model.families": {
                "a": {
                    "estimator": "sklearn.tree.DecisionTreeClassifier",
                    "search_space": {"max_depth": {"type": "int", "low": 1, "high": 3}},
                },
                "b": {"estimator": "sklearn.naive_bayes.GaussianNB"},
            },
        },
        "tune.sampler",
        ["grid"],
        id="grid-over-families",
    ),
    pytest.param({"final.ensemble": {"kind": "bagging"}}, "final.ensemble.kind", [], id="unknown-ensemble-kind"),
    pytest.param({"seed": -1}, "seed", [], id="negative-seed"),
    pytest.param(
        {"search_space.max_depth": {"type": "int", "low": 16, "high": 2}},
        "search_space.max_depth",
        ["low (16)"],
        id="int-low-above-high",
    ),
    pytest.param(
        {"search_space.max_depth": {"type": "int", "low": 5, "high": 5}},
        "search_space.max_depth",
        ["model.fixed"],
        id="int-low-equals-high",
    ),
    pytest.param(
        {"search_space.max_features": {"type": "float", "low": 0.5, "high": 0.5}},
        "search_space.max_features",
        [],
        id="float-low-equals-high",
    ),
    pytest.param(
        {"search_space.n_estimators": {"type": "int", "low": 0, "high": 300, "log": True}},
        "search_space.n_estimators",
        ["log"],
        id="log-int-low-zero",
    ),
    pytest.param(
        {"search_space.max_features": {"type": "float", "low": -0.1, "high": 0.9, "log": True}},
        "search_space.max_features",
        ["log"],
        id="log-float-low-negative",
    ),
    pytest.param(
        {"search_space.max_features": {"type": "float", "low": 0.1, "high": 0.9, "log": True, "step": 0.1}},
        "search_space.max_features",
        ["step"],
        id="log-float-with-step",
    ),
    pytest.param(
        {"search_space.n_estimators": {"type": "int", "low": 20, "high": 300, "log": True, "step": 10}},
        "search_space.n_estimators",
        ["step"],
        id="log-int-with-step",
    ),
    pytest.param(
        {"search_space.max_features": {"type": "float", "low": 0.1, "high": 0.9, "step": 0}},
        "search_space.max_features.step",
        [],
        id="float-step-zero",
    ),
    pytest.param(
        {"search_space.criterion": {"type": "categorical", "choices": []}},
        "search_space.criterion.choices",
        [],
        id="categorical-without-choices",
    ),
    pytest.param(
        {"search_space.criterion": {"type": "categorical", "choices": ["gini", "gini"]}},
        "search_space.criterion.choices",
        ["unique"],
        id="duplicate-choices",
    ),
    pytest.param(
        {"search_space.max_depth": {"type": "integer", "low": 2, "high": 16}},
        "search_space.max_depth",
        ["integer"],
        id="unknown-param-type",
    ),
    pytest.param({"search_space": {}}, "search_space", ["empty"], id="empty-search-space"),
    pytest.param(
        {"search_space.learning_rate": {"type": "float", "low": 0.01, "high": 0.3}},
        "search_space.learning_rate",
        ["RandomForestClassifier"],
        id="param-the-estimator-lacks",
    ),
    pytest.param({"model.fixed.max_depth": 3}, "search_space.max_depth", ["model.fixed"], id="param-fixed-and-searched"),
    pytest.param({"tune.metric": "auc"}, "tune.metric", ["'auc'"], id="unknown-metric"),
    pytest.param({"tune.direction": "minimize"}, "tune.direction", ["roc_auc"], id="direction-contradicts-metric"),
    pytest.param({"tune.direction": "up"}, "tune.direction", [], id="direction-not-a-direction"),
    pytest.param({"data.task": "regression"}, "tune.metric", ["regression"], id="classification-metric-regression-task"),
    pytest.param(
        {"data.task": "regression", "tune.metric": "accuracy"}, "tune.metric", ["'accuracy'"], id="regression-with-accuracy"
    ),
    pytest.param(
        {"data.task": "classification", "tune.metric": "rmse"}, "tune.metric", ["'rmse'"], id="classification-with-rmse"
    ),
    pytest.param(
        {"model.estimator": "sklearn.nonexistent.Forest"},
        "model.estimator",
        ["sklearn.nonexistent"],
        id="estimator-module-missing",
    ),
    pytest.param(
        {"model.estimator": "sklearn.ensemble.NoSuchForest"}, "model.estimator", ["NoSuchForest"], id="estimator-class-missing"
    ),
    pytest.param(
        {"model.estimator": "RandomForestClassifier"}, "model.estimator", ["import path"], id="estimator-without-module"
    ),
    pytest.param({"model.estimator": "os.system"}, "model.estimator", ["os.system", "refused"], id="estimator-os-system"),
    pytest.param(
        {"model.estimator": "json.JSONDecoder"},
        "model.estimator",
        ["json.JSONDecoder", "refused"],
        id="estimator-not-an-estimator-class",
    ),
    pytest.param(
        {"model.estimator": "sklearn.preprocessing.StandardScaler"}, "model.estimator", ["refused"], id="estimator-a-transformer"
    ),
    pytest.param({"model.fixed.bogus": 1}, "model.fixed", ["bogus"], id="fixed-arg-not-accepted"),
    pytest.param(
        {"model.preprocess.numeric_impute": "zero"}, "model.preprocess.numeric_impute", [], id="unknown-impute-strategy"
    ),
    pytest.param({"data.source": "s3"}, "data.source", [], id="unknown-data-source"),
    pytest.param({"schedule.cron": "61 * * * *"}, "schedule.cron", ["'61 * * * *'", "cron"], id="cron-bad-minute"),
    pytest.param({"schedule.cron": "every night"}, "schedule.cron", ["cron"], id="cron-not-cron"),
    pytest.param({"schedule.timezone": "Mars/Olympus"}, "schedule.timezone", ["Mars/Olympus"], id="unknown-time-zone"),
    pytest.param({"schedule.on_same_data": "retrain"}, "schedule.on_same_data", ["skip"], id="unknown-same-data-rule"),
    pytest.param({"schedule.add_trials": 0}, "schedule.add_trials", [], id="add-no-trials"),
    pytest.param({"schedule.deployment": "my deployment"}, "schedule.deployment", [], id="deployment-name-with-space"),
    pytest.param({"data.name": "mnist"}, "data.name", ["mnist"], id="unknown-sklearn-dataset"),
    pytest.param(
        {"data.source": "file", "data.path": "data/raw/x.csv"}, "data.source", ["'target'"], id="file-source-without-target"
    ),
    pytest.param({"data.source": "file", "data.target": "y"}, "data.source", ["'path'"], id="file-source-without-path"),
    pytest.param(
        {"data.source": "file", "data.path": "data/raw/x.txt", "data.target": "y"},
        "data.path",
        ["x.txt"],
        id="file-source-not-csv-or-parquet",
    ),
    pytest.param({"data.source": "synthetic"}, "data.source", ["task"], id="synthetic-without-task"),
    pytest.param(
        {"data.synthetic.n_informative": 30}, "data.synthetic.n_informative", [], id="synthetic-more-informative-than-features"
    ),
    pytest.param({"data.cv_folds": 1}, "data.cv_folds", [], id="cv-folds-one"),
    pytest.param({"data.val_size": 0}, "data.val_size", ["cv_folds"], id="no-validation-at-all"),
    pytest.param({"data.test_size": 0.5, "data.val_size": 0.45}, "data.test_size", ["10%"], id="no-rows-left-to-train"),
    pytest.param({"data.test_size": 0}, "data.test_size", [], id="no-test-split"),
    pytest.param({"tune.study_name": "my study/1"}, "tune.study_name", [], id="bad-study-name-characters"),
    pytest.param({"tune.study_name": ""}, "tune.study_name", [], id="empty-study-name"),
    # hostile or malformed values (issue 8): wrong shapes, code where a class is expected
    pytest.param({"tune": 5}, "tune", ["dictionary"], id="section-not-a-mapping"),
    pytest.param({"search_space": ["n_estimators", "max_depth"]}, "search_space", ["dictionary"], id="search-space-a-list"),
    pytest.param(
        {"search_space.max_depth": {"type": "int", "low": "two", "high": 16}},
        "search_space.max_depth.low",
        ["integer"],
        id="range-bound-not-a-number",
    ),
    pytest.param({"tune.n_trials": 1.5}, "tune.n_trials", ["integer"], id="fractional-n-trials"),
    pytest.param({"tune.parallelism": 0}, "tune.parallelism", [], id="parallelism-zero"),
    pytest.param({"model.estimator": 123}, "model.estimator", [], id="estimator-not-a-string"),
    pytest.param({"model.estimator": "subprocess.Popen"}, "model.estimator", ["refused"], id="estimator-subprocess-popen"),
    pytest.param({"model.estimator": "builtins.eval"}, "model.estimator", ["refused"], id="estimator-builtin-eval"),
    pytest.param({"tracking.uri": ["sqlite:///x.db"]}, "tracking.uri", ["string"], id="tracking-uri-not-a-string"),
]


@pytest.mark.parametrize(("changes", "key", "words"), BAD_CASES)
def test_bad_config_is_refused_naming_the_key(params_with, write_params, changes, key, words) -> None:
    path = write_params(params_with(changes))

    with pytest.raises(ConfigError) as info:
        load_config(path)

    message = str(info.value)
    assert str(path) in message
    assert_names_key(message, key)
    for word in words:
        assert word in message
    assert_one_paragraph(message)


def test_missing_section_is_named(params_with, write_params) -> None:
    raw = params_with()
    del raw["model"]
    with pytest.raises(ConfigError, match=r"model: Field required"):
        load_config(write_params(raw))


# --- the file itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
        "!!python/name:os.system",
    ],
    ids=["apply-os-system", "apply-subprocess", "name-os-system"],
)
def test_python_yaml_tags_are_refused_and_never_run(tmp_path: Path, write_params, tag: str) -> None:
    marker = tmp_path / "pwned"
    text = PARAMS.read_text(encoding="utf-8") + "\nextra: " + tag.format(marker=marker) + "\n"
    path = write_params(text)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(path) in str(info.value) and "not valid YAML" in str(info.value)
    assert_one_paragraph(str(info.value))
    assert not marker.exists()


@pytest.mark.parametrize("text", ["- seed\n- data\n", "just a string\n", "42\n", ""], ids=["list", "string", "number", "empty"])
def test_file_that_is_not_a_mapping_is_refused(write_params, text: str) -> None:
    path = write_params(text)
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_invalid_yaml_is_one_paragraph_naming_the_file(write_params) -> None:
    path = write_params("seed: [1, 2\ndata: {source: sklearn\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert_one_paragraph(str(info.value))


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(tmp_path)


# --- overrides ----------------------------------------------------------------------------


def test_override_sets_a_nested_key() -> None:
    cfg = load_config(PARAMS, {"tune.n_trials": 7})
    assert cfg.tune.n_trials == 7
    assert cfg.tune.metric == "roc_auc"  # the rest of the section is untouched


def test_override_replaces_a_search_space_entry() -> None:
    cfg = load_config(PARAMS, {"search_space.max_depth": {"type": "int", "low": 2, "high": 4}})
    assert (cfg.search_space["max_depth"].low, cfg.search_space["max_depth"].high) == (2, 4)


def test_overrides_do_not_touch_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "params.yaml"
    copy.write_bytes(PARAMS.read_bytes())
    load_config(copy, {"tune.n_trials": 7})
    assert copy.read_bytes() == PARAMS.read_bytes()
    assert load_config(copy).tune.n_trials == 30


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"seed.value": 1}, "seed"),  # seed is a number, not a section
        ({"tune.n_trials.max": 1}, "n_trials"),
    ],
)
def test_override_into_a_non_section_is_refused(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match="not a section") as info:
        load_config(PARAMS, overrides)
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"tune.n_trials": 0}, "tune.n_trials"), ({"tnue.n_trials": 3}, "tnue"), ({"tune.metric": "auc"}, "tune.metric")],
)
def test_override_is_validated_like_the_file(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(PARAMS, overrides)
    assert_names_key(str(info.value), key)


# --- the CLI entry ------------------------------------------------------------------------


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("params", "overrides", "key"),
    [
        ("params.yaml", [], "tune.metric"),
        ("missing.yaml", [], "missing.yaml"),
        ("params.yaml", ["tune.n_trials=0"], "tune.n_trials"),
        ("params.yaml", ["tune.n_trials"], "tune.n_trials"),
    ],
    ids=["bad-metric-in-file", "missing-file", "bad-override", "override-without-value"],
)
def test_cli_refuses_a_bad_config_with_one_paragraph_and_no_side_effects(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    params_with,
    write_params,
    params: str,
    overrides: list[str],
    key: str,
) -> None:
    write_params(params_with({"tune.metric": "auc"}))
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    calls: list[Config] = []

    code = execute(calls.append, params, overrides)

    out, err = capsys.readouterr()
    assert code == 2
    assert calls == []
    assert _listing(tmp_path) == before
    assert out == ""
    assert err.startswith("tunedag: error: ")
    assert key in err
    assert_one_paragraph(err)


def test_cli_runs_with_a_good_config_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[Config] = []

    code = execute(calls.append, str(PARAMS), ["tune.n_trials=7", "tune.metric=f1"])

    assert code == 0
    assert len(calls) == 1
    assert (calls[0].tune.n_trials, calls[0].tune.metric) == (7, "f1")
    assert _listing(tmp_path) == []


def test_cli_reports_a_tunedag_error_raised_by_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    def run(cfg: Any) -> None:
        raise TunedagError("data.path x.csv is gone")

    assert execute(run, str(PARAMS), []) == 2
    assert capsys.readouterr().err == "tunedag: error: data.path x.csv is gone\n"


def test_float_params_round_trip_through_the_schema() -> None:
    cfg = load_config(PARAMS, {"search_space.max_features": {"type": "float", "low": 0.1, "high": 0.9, "step": 0.1}})
    p = cfg.search_space["max_features"]
    assert isinstance(p, FloatParam) and (p.low, p.high, p.step, p.log) == (0.1, 0.9, 0.1, False)


# --- secrets: a password in a URL stays out of JSON (what Prefect stores as flow-run parameters) ---------


@pytest.mark.parametrize(
    ("key", "url", "shown"),
    [
        ("tracking.uri", "http://bob:s3cret@127.0.0.1:5000", "http://bob:***@127.0.0.1:5000"),
        ("tune.storage", "postgresql://bob:s3cret@db.example:5432/optuna", "postgresql://bob:***@db.example:5432/optuna"),
    ],
)
def test_url_passwords_are_redacted_in_json_and_kept_in_python(key: str, url: str, shown: str) -> None:
    from flows.prepare import prepare_flow

    cfg = load_config(PARAMS, {key: url})
    section, field = key.split(".")

    assert getattr(getattr(cfg, section), field) == url  # the code connects with the real password
    assert cfg.model_dump()[section][field] == url
    assert cfg.model_dump(mode="json")[section][field] == shown
    assert "s3cret" not in cfg.model_dump_json()
    stored = prepare_flow.serialize_parameters({"cfg": cfg})  # exactly what Prefect sends to its API
    assert stored["cfg"][section][field] == shown and "s3cret" not in str(stored)


def test_urls_without_a_password_serialise_unchanged() -> None:
    cfg = load_config(PARAMS)
    assert cfg.model_dump(mode="json")["tracking"]["uri"] == "sqlite:///mlruns/mlflow.db"
    assert cfg.model_dump(mode="json")["tune"]["storage"] == "optuna/study.journal"


# --- the YAML reader: duplicate keys, aliases, numbers; the import allow-list ------------------------


def test_anchors_merge_keys_and_exponent_floats_still_load(write_params) -> None:
    """What plain YAML users write keeps working: an anchor reused, a merge key overriding one value, 1e-3 as a float."""
    text = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    text = text.replace(
        "search_space:\n",
        "search_space:\n  ccp_alpha: &bounds {type: float, low: 1e-4, high: 1e-1, log: true}\n"
        "  min_weight_fraction_leaf: {<<: *bounds, low: 0.0, high: 0.1, log: false}\n",
        1,
    )
    cfg = load_config(write_params(text))
    assert cfg.search_space["ccp_alpha"].low == pytest.approx(1e-4)
    assert cfg.search_space["min_weight_fraction_leaf"].low == 0.0 and not cfg.search_space["min_weight_fraction_leaf"].log


def test_a_long_legitimate_enqueue_is_not_taken_for_an_alias_bomb(write_params, real_params) -> None:
    raw = dict(real_params, tune={**real_params.get("tune", {}), "enqueue": [{"max_depth": 2 + i % 10} for i in range(6000)]})
    assert len(load_config(write_params(raw)).tune.enqueue) == 6000


@pytest.mark.parametrize(("value", "ok"), [(1, True), (2.5, True), ("1e-2", True), (True, False), (float("nan"), False)])
def test_float_fields_take_numbers_and_refuse_booleans_and_nan(params_with, value, ok) -> None:
    raw = params_with({"tune.timeout": value})
    if ok:
        assert Config.model_validate(raw).tune.timeout == float(value)
    else:
        with pytest.raises(ValidationError, match="tune.timeout"):
            Config.model_validate(raw)


def test_the_allow_list_is_checked_on_the_string_before_any_import(monkeypatch) -> None:
    from tunedag.imports import allowing, check_import_path

    monkeypatch.delenv("TUNEDAG_ALLOWED_MODULES", raising=False)
    imported = []
    monkeypatch.setattr("importlib.import_module", lambda name, *a: imported.append(name))
    for path in ("evil_mod.Forest", "sklearnx.Forest", "os.path.join"):
        with pytest.raises(ConfigError):
            check_import_path(path, "model.estimator", "x", colon=False)
    assert imported == []
    assert check_import_path("sklearn.tree.DecisionTreeClassifier", "model.estimator", "x", colon=False)[0] == "sklearn.tree"
    with allowing(["mypkg"]):
        assert check_import_path("mypkg.sub:train", "train_fn", "x") == ("mypkg.sub", "train")
        with pytest.raises(ConfigError, match="never imports"):
            check_import_path("os:system", "train_fn", "x")
