"""Re-running a stage never rewrites what an earlier run registered (issue 23, item 1); an ensemble as the second version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow.sklearn
import pytest

from flows.evaluate import evaluate_flow
from flows.prepare import prepare_flow
from flows.train import train_flow
from flows.tune import tune_flow
from tasks.training import FINAL_ARTIFACT, ROLE_FINAL
from tracking.store import client_for
from tracking.tags import TAG_ROLE, TAG_STUDY
from tunedag.promotion import CHAMPION

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _version_files(client, version, dest: Path) -> dict[str, str]:
    """SHA-256 of every file of a registered version, as downloaded from its source."""
    folder = Path(client.download_artifacts(version.run_id, FINAL_ARTIFACT, str(dest)))
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_training_again_leaves_the_champions_files_alone_and_promotion_scores_the_real_champion(make_config, tmp_path):
    cfg = make_config(tune__parallelism=1)
    prepare_flow(cfg)
    tune_flow(cfg)
    train_flow(cfg)
    first_scores = evaluate_flow(cfg)
    client, name = client_for(cfg.tracking.uri), cfg.final.registered_model
    v1 = client.get_model_version_by_alias(name, CHAMPION)
    v1_files = _version_files(client, v1, tmp_path / "before")

    voting = make_config(tune__parallelism=1, final__ensemble__kind="voting")  # top_k 3, as params.yaml has it
    train_flow(voting)
    second_scores = evaluate_flow(voting)

    # The ensemble of the top trials is evaluated beside the single best.
    assert {"test_roc_auc", "single_best_test_roc_auc"} <= set(second_scores)
    model = mlflow.sklearn.load_model(str(voting.paths.model_dir))
    assert type(model).__name__ == "VotingClassifier" and len(model.estimators_) == voting.final.ensemble.top_k == 3

    v2 = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    assert (str(v1.version), str(v2.version)) == ("1", "2")
    assert _version_files(client, client.get_model_version(name, "1"), tmp_path / "after") == v1_files
    assert "MLmodel" in v1_files and v2.run_id != v1.run_id
    for version in (v1, v2):  # each version's files sit in a run of their own, nested under the pipeline run
        run = client.get_run(version.run_id)
        assert run.data.tags[TAG_ROLE] == ROLE_FINAL and run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] != version.run_id and run.data.tags[TAG_STUDY]
    v1_score, v2_score = first_scores["test_roc_auc"], second_scores["test_roc_auc"]
    assert v1_score != v2_score, "the voting model must score differently, or the comparison below proves nothing"
    reason = client.get_model_version(name, "2").tags["tunedag.promotion"]
    assert "champion version 1 " in reason and f"vs {v1_score:.6g}" in reason, reason
    assert client.get_model_version(name, "1").tags["test_roc_auc"] == str(v1_score)  # its own score, not re-tagged
    champion = str(client.get_model_version_by_alias(name, CHAMPION).version)
    assert champion == ("2" if v2_score > v1_score else "1")


def test_raising_n_trials_through_the_tune_flow_draws_new_configurations(make_config):
    """Issue 23, item 3, end to end: `tune.sampler: random`, n_trials 4 then 8 (trials 4-7 were trials 0-3 again)."""
    from optuna.trial import TrialState

    cfg = make_config(tune__sampler={"name": "random"}, tune__n_trials=4)
    prepare_flow(cfg)
    tune_flow(cfg)
    more = make_config(tune__sampler={"name": "random"}, tune__n_trials=8)
    tune_flow(more)

    from stageio.files import read_json
    from tasks.report import load_tuned_study

    study = load_tuned_study(more, read_json(more.paths.tune_summary, "paths.tune_summary"))
    configs = [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(configs) == 8
    assert all(configs[i] != configs[j] for i in range(8) for j in range(i)), configs
