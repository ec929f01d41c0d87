"""The study report from small in-memory Optuna studies: figures, notes, tables, the HTML pages, terminal lines."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
import pytest

from reporting import render as report
from reporting.counts import trial_counts
from reporting.render import ReportContext, TrackedSeries

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -4, 4)
    n = trial.suggest_int("n", 1, 64, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if x > 3:
        raise ValueError("x above 3 fails")
    for step in range(3):
        trial.report(x * x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x * x + n / 10 + (kind == "a")


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    """24 trials of a minimised objective with pruned and failed ones among them."""
    s = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=1), pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    )
    s.optimize(_objective, n_trials=24, catch=(ValueError,))
    states = {t.state for t in s.trials}
    assert {optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE} <= states
    return s


@pytest.fixture(scope="module")
def series(study: optuna.Study) -> TrackedSeries:
    complete = report.complete_trials(study)
    return TrackedSeries(
        folds={t.number: [t.value - 0.1, t.value, t.value + 0.2] for t in complete},
        curves={
            complete[0].number: {"train_loss": [(1, 1.0), (2, 0.6), (3, 0.4)], "val_loss": [(1, 1.1), (2, 0.8)]},
            complete[1].number: {"train_loss": [(1, 0.9), (2, 0.5)], "val_accuracy": [(1, 0.7)]},
        },
    )


@pytest.fixture(scope="module")
def drawn(study: optuna.Study, series: TrackedSeries) -> report.StudyFigures:
    figures = report.build_figures(study, ["rmse"], series, seed=0)
    yield figures
    plt.close("all")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _names(figures: report.StudyFigures) -> list[str]:
    return [f.name for f in figures.figures]


def test_a_single_objective_study_with_pruned_and_failed_trials_gets_every_figure(drawn):
    assert _names(drawn) == [
        "optimization_history",
        "param_importances",
        "parallel_coordinate",
        "contour",
        "slice",
        "intermediate_values",
        "cv_fold_spread",
        "learning_curves",
    ]
    assert drawn.notes == []
    assert set(drawn.importances) == {"x", "n", "kind"} and sum(drawn.importances.values()) == pytest.approx(1.0)
    assert list(drawn.importances.values()) == sorted(drawn.importances.values(), reverse=True)


def test_learning_curves_skip_single_points_and_the_contour_pairs_the_two_most_important_params(drawn):
    curves = next(f for f in drawn.figures if f.name == "learning_curves")
    assert {a.layout.annotations[i].text for a in [curves.interactive] for i in range(2)} == {"train_loss", "val_loss"}
    contour = next(f for f in drawn.figures if f.name == "contour")
    top = list(drawn.importances)[:2]
    assert all(p in contour.caption for p in top)


def test_a_multi_objective_study_gets_a_pareto_front_and_first_objective_plots():
    s = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1) + t.params["x"]), n_trials=12)

    drawn = report.build_figures(s, ["roc_auc", "predict_latency_ms"])

    assert _names(drawn) == [
        "optimization_history",
        "pareto_front",
        "param_importances",
        "parallel_coordinate",
        "contour",
        "slice",
    ]
    assert drawn.notes == []
    pareto = next(f for f in drawn.figures if f.name == "pareto_front")
    assert pareto.interactive.layout.xaxis.title.text == "roc_auc"


def test_more_than_three_objectives_skip_the_pareto_front_with_a_note():
    s = optuna.create_study(directions=["minimize"] * 4, sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(lambda t: tuple(t.suggest_float(k, 0, 1) for k in "abcd"), n_trials=5)

    drawn = report.build_figures(s, ["a", "b", "c", "d"])

    assert "pareto_front" not in _names(drawn)
    assert any("2 or 3 objectives" in n for n in drawn.notes)


def test_a_single_trial_draws_history_and_slice_and_says_why_the_rest_is_missing():
    s = optuna.create_study()
    s.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=1)

    drawn = report.build_figures(s, ["rmse"])

    assert _names(drawn) == ["optimization_history", "slice"]
    assert drawn.importances == {}
    assert any("at least 2 complete trials; this study has 1" in n for n in drawn.notes)
    assert len(drawn.notes) == 3  # importances, parallel coordinates, contour


def test_one_parameter_skips_importances_and_contour_with_notes_naming_it():
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(lambda t: t.suggest_float("alpha", 1e-3, 10, log=True), n_trials=6)

    drawn = report.build_figures(s, ["rmse"])

    assert _names(drawn) == ["optimization_history", "parallel_coordinate", "slice"]
    assert any("varies 1 (alpha)" in n for n in drawn.notes)
    assert any(n.startswith("Contour plot: needs two parameters") for n in drawn.notes)


def test_trials_that_all_score_the_same_get_a_note_instead_of_importances():
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(lambda t: 1.0 + 0 * t.suggest_float("x", 0, 1) + 0 * t.suggest_int("n", 1, 5), n_trials=5)

    drawn = report.build_figures(s, ["accuracy"])

    assert drawn.importances == {} and "param_importances" not in _names(drawn)
    (note,) = drawn.notes
    assert note.startswith("Parameter importances: not estimated (")  # Optuna's fANOVA finds no variance


def test_a_study_without_complete_trials_draws_nothing_and_does_not_raise():
    s = optuna.create_study()
    s.optimize(lambda t: (_ for _ in ()).throw(ValueError(t.suggest_float("x", 0, 1))), n_trials=2, catch=(ValueError,))

    drawn = report.build_figures(s, ["rmse"])

    assert drawn.figures == [] and drawn.notes
    assert report.best_so_far(s) is None


def test_plot_tables_hold_complete_trials_with_the_running_best(study, drawn, series):
    tables = report.plot_tables(study, ["rmse"], drawn.importances, series.folds)

    header, rows = tables[report.TRIALS_TABLE]
    assert header[:4] == ["trial", "rmse", "best_rmse", "duration_s"] and "param_kind" in header
    assert [r[0] for r in rows] == [t.number for t in report.complete_trials(study)]
    assert [r[2] for r in rows] == [min(r[1] for r in rows[: i + 1]) for i in range(len(rows))]
    assert tables[report.IMPORTANCES_TABLE][1][0] == [next(iter(drawn.importances)), max(drawn.importances.values())]
    assert len(tables[report.FOLDS_TABLE][1]) == 3 * len(rows)
    assert report.best_so_far(study) == (study.best_trial.number, study.best_value)


@pytest.fixture
def context(study) -> ReportContext:
    summary = {
        "study_name": "demo<study>",
        "metric": "rmse",
        "score_prefix": "val",
        "objectives": ["rmse"],
        "best_trial": study.best_trial.number,
        "best_values": [study.best_value],
        "best_params": study.best_params,
    }
    return ReportContext(
        summary,
        {"test_rmse": 1.25, "test_r2": 0.5, "best_val_rmse": study.best_value},
        trial_counts(study),
        "http://127.0.0.1:5000/#/experiments/1/runs/abc",
        {"MLflow store": "sqlite:///mlruns/mlflow.db"},
    )


def test_the_report_opens_from_disk_with_no_network(tmp_path: Path, study, series, context):
    figures = report.build_figures(study, ["rmse"], series)
    (tmp_path / report.FIGURE_DIR).mkdir()
    (tmp_path / report.FIGURE_DIR / "stale.png").write_bytes(b"old")

    index = report.write_report(
        tmp_path, figures, report.plot_tables(study, ["rmse"], figures.importances, series.folds), context
    )

    page = index.read_text()
    assert index == tmp_path / report.INDEX
    assert page.count('src="data:image/png;base64,') == len(figures.figures) == 8
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.replace(context.run_url, ""))
    assert "demo&lt;study&gt;" in page and "test rmse" in page and str(study.best_params["kind"]) in page
    assert sorted(p.name for p in (tmp_path / report.FIGURE_DIR).iterdir()) == sorted(f"{f.name}.png" for f in figures.figures)
    interactive = (tmp_path / report.INTERACTIVE).read_text()
    assert "<script src" not in interactive and interactive.count('class="plotly-graph-div"') == 8
    assert len(interactive) < 8_000_000 and len(page) < 2_000_000
    with (tmp_path / report.TRIALS_TABLE).open() as fh:
        assert next(csv.reader(fh))[:3] == ["trial", "rmse", "best_rmse"]


def test_progress_line_shows_a_bar_the_trial_and_the_best_so_far():
    line = report.format_progress(7, "COMPLETE", 0.99123, (4, 0.995), 6, 30, "roc_auc", 1.234)
    assert line == "[####----------------]  6/30 trial 7 COMPLETE roc_auc=0.99123 in 1.2s | best 0.995 (#4)"
    failed = report.format_progress(8, "FAIL", None, None, 30, 30, "roc_auc", 0.2, "ValueError: bad\ntraceback")
    assert failed == "[####################] 30/30 trial 8 FAIL ValueError: bad in 0.2s | no complete trial yet"


def test_summary_names_best_params_scores_report_and_ui(context):
    text = report.format_summary(context, Path("reports/study/index.html"))

    lines = text.splitlines()
    assert lines[0].startswith("tunedag: study demo<study> (") and "complete" in lines[0]
    assert "val rmse=" in lines[1] and "kind=" in lines[2]
    assert lines[3] == "  test (held out, scored once): r2=0.5, rmse=1.25"
    assert "reports/study/index.html" in lines[4] and "make ui" in lines[5] and context.run_url in lines[5]


@pytest.mark.parametrize(("prefix", "kind"), [("cv", "cross-validated"), ("val", "validation")])
def test_the_best_scores_say_whether_they_are_cross_validated(context, prefix, kind):
    summary = {**context.summary, "score_prefix": prefix}
    test = {"test_rmse": 1.25, f"best_{prefix}_rmse": 0.75}  # the test-metrics file repeats the best trial's score
    ctx = ReportContext(summary, test, context.counts, context.run_url, context.links)

    assert f"  best trial #{summary['best_trial']}: {prefix} rmse=" in report.format_summary(ctx).splitlines()[1]
    page = report.render_index(report.StudyFigures([], [], {}), {}, ctx)
    assert f"<td>{kind} rmse (best trial)</td>" in page and f"best_{prefix}_rmse" not in page and "test rmse" in page


@pytest.mark.slow
def test_the_report_module_imports_neither_prefect_nor_mlflow():
    code = "import sys, reporting.render; print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
