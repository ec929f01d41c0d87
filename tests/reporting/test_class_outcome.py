"""The report's confusion matrix, decision threshold and predicted-positive rate for a classifier on the test split."""

from __future__ import annotations

import pandas as pd

from reporting import render


def _context(outcome: render.ClassOutcome) -> render.ReportContext:
    summary = {
        "study_name": "s",
        "metric": "f1",
        "score_prefix": "val",
        "objectives": ["f1"],
        "best_trial": 0,
        "best_values": [0.5],
        "best_params": {"C": 1.0},
    }
    return render.ReportContext(summary, {"test_f1": 0.2}, {"complete": 1}, classes=outcome)


def test_a_collapsed_imbalanced_model_is_flagged_with_its_matrix_and_threshold():
    y = pd.Series(["no"] * 88 + ["yes"] * 12)
    pred = ["no"] * 88 + ["yes"] * 2 + ["no"] * 10  # 2 of the 12 positives found, nothing else predicted positive
    outcome = render.class_outcome(y, pred, None)
    assert outcome.labels == ["no", "yes"] and outcome.positive == "yes"
    assert outcome.matrix == [[88, 0], [10, 2]]
    assert outcome.rates == (0.02, 0.12)
    assert "predicts yes for 2.0% of the test rows, where 12.0% are" in outcome.warning

    printed = render.format_summary(_context(outcome)).splitlines()
    assert "  test confusion matrix (predicted no / yes): true no: 88 0; true yes: 10 2" in printed
    assert any(line.startswith("  decision threshold: the estimator's own rule") for line in printed)
    assert "  predicted yes: 2.0% of the test rows, true 12.0%" in printed
    assert any(line.startswith("  warning: the model predicts yes") for line in printed)

    page = render.render_index(render.StudyFigures([], [], {}), {}, _context(outcome))
    assert "<h2>Test split: confusion matrix</h2>" in page
    assert "<tr><td>true yes</td><td>10</td><td>2</td></tr>" in page and "Warning: the model predicts yes" in page


def test_a_tuned_threshold_is_shown_and_a_balanced_model_raises_no_warning():
    y = [0, 0, 0, 1, 1, 1, 1, 0]
    outcome = render.class_outcome(y, [0, 0, 1, 1, 1, 1, 0, 0], 0.3125)
    assert outcome.positive == "1" and outcome.matrix == [[3, 1], [1, 3]] and outcome.warning is None
    printed = render.format_summary(_context(outcome))
    assert "  decision threshold: 0.3125 on the score of class 1 (tuned out-of-fold for tune.metric)" in printed
    assert "warning" not in printed


def test_several_classes_have_a_matrix_and_no_positive_rate():
    outcome = render.class_outcome([2, 10, 2, 3], [2, 10, 3, 3], None)
    assert outcome.labels == ["2", "3", "10"] and outcome.matrix == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert outcome.rates is None and outcome.warning is None
