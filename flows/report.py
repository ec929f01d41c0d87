"""Stage 5: the study report (figures, DVC plots, one HTML page), logged on the pipeline run."""

from __future__ import annotations

from prefect import flow

from reporting.counts import trial_counts
from reporting.render import ReportContext, format_summary
from stageio.files import read_json
from tasks.report import (
    data_facts,
    end_pipeline_run,
    gather_series,
    load_tuned_study,
    log_report,
    outcome_on_test,
    run_url,
    write_study_report,
)
from tracking.store import open_tracker
from tunedag.config import Config
from tunedag.errors import redact


@flow(name="report")
def report_flow(cfg: Config) -> str:
    """Write `paths.report_dir`, upload it to the parent MLflow run; return the closing summary text."""
    summary = read_json(cfg.paths.tune_summary, "paths.tune_summary")
    test_scores = read_json(cfg.paths.test_metrics, "paths.test_metrics")
    tracker = open_tracker(cfg.tracking)
    study = load_tuned_study(cfg, summary)
    url = run_url(cfg.tracking.uri, tracker.experiment_id, summary["parent_run_id"])
    ctx = ReportContext(
        summary,
        test_scores,
        trial_counts(study),
        url,
        {
            "MLflow store": redact(cfg.tracking.uri),
            "Optuna study": f"{summary['study_name']} in {redact(cfg.tune.storage)}",
            "DVC plots": "dvc plots show (writes dvc_plots/index.html, which loads Vega from a CDN: blank offline)",
        },
        data_facts(cfg, study, summary),
        outcome_on_test(cfg),
    )
    index = write_study_report(cfg, study, gather_series(cfg, tracker, study), ctx)
    log_report(tracker, summary["parent_run_id"], cfg.paths.report_dir)
    end_pipeline_run(tracker, summary["parent_run_id"])
    return format_summary(ctx, index)


def run(cfg: Config) -> str:
    """Run the report flow and print the closing summary."""
    text = report_flow(cfg)
    print(text)
    return text
