"""A long `tune.enqueue` travels by reference, not as a Prefect flow parameter (issue 24: 6,000 configurations hit the 512 kB limit)."""

from __future__ import annotations

import itertools
import json

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

from flows.prepare import prepare_flow
from flows.tune import tune_flow
from tests.flows.ledger import load_study, study_runs
from tracking.tags import TAG_FLOW_RUN
from tunedag.config import ENQUEUE_INLINE_BYTES


def configurations(n: int) -> list[dict]:
    """`n` distinct configurations of the shrunk search space of the test config."""
    grid = itertools.product(range(5, 31), range(2, 17), range(1, 11), ["sqrt", "log2", 0.5], ["gini", "entropy"])
    return [
        {"n_estimators": a, "max_depth": b, "min_samples_leaf": c, "max_features": d, "criterion": e}
        for a, b, c, d, e in itertools.islice(grid, n)
    ]


def test_six_thousand_configurations_fit_in_the_flow_run_parameters_and_the_flow_gets_them_all(make_config):
    cfg = make_config(tune__sampler="manual", tune__enqueue=configurations(6000))
    shown = tune_flow.serialize_parameters({"cfg": cfg, "checked_version": None})
    size = len(json.dumps(shown, separators=(",", ":")))
    assert size < min(get_current_settings().server.api.max_parameter_size, 64_000), size
    assert shown["cfg"]["tune"]["enqueue"]["configurations"] == 6000
    assert len(cfg.tune.enqueue) == 6000 and cfg.tune.enqueue[5999] == configurations(6000)[5999]  # Python access: all of it
    short = make_config(tune__sampler="manual", tune__enqueue=configurations(3))
    assert tune_flow.serialize_parameters({"cfg": short})["cfg"]["tune"]["enqueue"] == configurations(3)  # shown as is


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_flow_run_given_a_long_enqueue_list_runs_its_configurations_and_records_only_the_reference(make_config):
    configs = configurations(400)
    assert len(json.dumps(configs)) > ENQUEUE_INLINE_BYTES
    cfg = make_config(tune__sampler="manual", tune__enqueue=configs, tune__n_trials=3, tune__parallelism=1)
    prepare_flow(cfg)
    tune_flow(cfg)

    study = load_study(cfg)
    assert [t.params for t in study.trials[:3]] == configs[:3]
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    with get_client(sync_client=True) as client:
        recorded = client.read_flow_run(parent.data.tags[TAG_FLOW_RUN]).parameters
    assert recorded["cfg"]["tune"]["enqueue"]["configurations"] == 400, recorded["cfg"]["tune"]["enqueue"]
