"""The study report: figures, DVC plot tables, the one-page HTML report, and the terminal lines.

Pure: it reads an Optuna study plus plain data the caller gathered from tracking (scores per
CV fold, learning curves per epoch) and imports neither Prefect nor MLflow. Interactive
figures come from `optuna.visualization` (plotly); PNGs from `optuna.visualization.matplotlib`
on the Agg backend, which needs no browser, display or network.

A figure that cannot be drawn for this study (one trial, one parameter, several objectives
where Optuna needs one) is skipped with a note in the report; the pipeline never fails on it.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from reporting.counts import count_text

# Names inside `paths.report_dir`; dvc.yaml declares the plot tables under the same names.
INDEX = "index.html"
INTERACTIVE = "interactive.html"
FIGURE_DIR = "figures"
TRIALS_TABLE = "trials.csv"
IMPORTANCES_TABLE = "importances.csv"
FOLDS_TABLE = "folds.csv"

FOLD_TRIALS = 20  # the best trials shown in the CV fold spread
CURVE_TRIALS = 5  # the best trials whose learning curves are drawn
CONTOUR_PARAMS = 2  # the contour plot pairs the most important parameters
PNG_DPI = 90
# What a trial score named `<prefix>_<metric>` is, in the report (tunedag.selection.score_prefix).
_SCORE_KIND = {"cv": "cross-validated", "val": "validation"}


class Skip(Exception):
    """A figure not drawn for this study; its message, when not empty, is the note shown in the report.

    An empty message means the figure does not apply to this kind of study (a Pareto front for
    one objective, learning curves for a forest) and needs no note.
    """


@dataclass(frozen=True)
class TrackedSeries:
    """What the tracking store holds beyond the study: per-fold scores and per-epoch curves.

    `folds` maps a trial number to its scores on each CV fold (in fold order); `curves` maps a
    trial number to named series of (step, value) points, e.g. `train_loss` per epoch.
    """

    folds: dict[int, list[float]] = field(default_factory=dict)
    curves: dict[int, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One figure of the report, as an interactive plotly figure and a matplotlib figure for the PNG."""

    name: str
    title: str
    caption: str
    interactive: Any
    png: Any


@dataclass
class StudyFigures:
    """The figures drawn, the notes on those skipped, and the parameter importances (may be empty)."""

    figures: list[Figure]
    notes: list[str]
    importances: dict[str, float]


# ---------------------------------------------------------------------------------------------
# Reading the study


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def best_so_far(study: optuna.Study) -> tuple[int, float] | None:
    """The best complete trial on the first objective, as (number, value); None before any completes."""
    complete = complete_trials(study)
    if not complete:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(complete, key=lambda t: t.values[0])
    return best.number, best.values[0]


def parameter_importances(study: optuna.Study, seed: int) -> dict[str, float]:
    """fANOVA importances of the parameters for the first objective, most important first.

    Raises Skip when they cannot be estimated: fewer than two complete trials, or fewer than
    two parameters shared by all of them.
    """
    complete = complete_trials(study)
    if len(complete) < 2:
        raise Skip(f"Parameter importances need at least 2 complete trials; this study has {len(complete)}.")
    shared = set.intersection(*(set(t.distributions) for t in complete))
    varied = [p for p in shared if not _single_valued(complete, p)]
    if len(varied) < 2:
        raise Skip(
            f"Parameter importances need at least 2 parameters that vary across the complete trials; "
            f"this study varies {len(varied)} ({', '.join(sorted(varied)) or 'none'})."
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    found = optuna.importance.get_param_importances(
        study, evaluator=evaluator, params=sorted(varied), target=lambda t: t.values[0]
    )
    return {p: float(v) for p, v in sorted(found.items(), key=lambda kv: -kv[1])}


def _single_valued(trials: list[FrozenTrial], param: str) -> bool:
    return len({repr(t.params[param]) for t in trials}) < 2


# ---------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class _Context:
    study: optuna.Study
    names: list[str]
    series: TrackedSeries
    importances: dict[str, float]
    importance_note: str = ""

    @property
    def multi(self) -> bool:
        return len(self.study.directions) > 1

    def target(self) -> dict[str, Any]:
        """Optuna plot arguments for the first objective (Optuna refuses a study with several otherwise)."""
        if self.multi:
            return {"target": lambda t: t.values[0], "target_name": self.names[0]}
        return {"target_name": self.names[0]}


def build_figures(study: optuna.Study, names: list[str], series: TrackedSeries | None = None, seed: int = 0) -> StudyFigures:
    """Every figure that applies to `study`; `names` are the objectives (tune.metric first)."""
    try:
        importances, note = parameter_importances(study, seed), ""
    except Skip as exc:
        importances, note = {}, str(exc)
    except Exception as exc:  # noqa: BLE001 - as for the figures below: a note, never a failed pipeline
        importances, note = {}, f"Parameter importances: not estimated ({type(exc).__name__}: {exc})."
    ctx = _Context(study, names, series or TrackedSeries(), importances, note)
    figures, notes = [], []
    for builder in _BUILDERS:
        try:
            figures.append(builder(ctx))
        except Skip as exc:
            notes += [str(exc)] if str(exc) else []
        except Exception as exc:  # noqa: BLE001 - a figure must never fail the pipeline; the note says why
            notes.append(f"{builder.__name__.strip('_').replace('_', ' ')}: not drawn ({type(exc).__name__}: {exc}).")
    return StudyFigures(figures, notes, importances)


def _needs_complete(ctx: _Context, at_least: int, what: str) -> list[FrozenTrial]:
    complete = complete_trials(ctx.study)
    if len(complete) < at_least:
        raise Skip(f"{what} needs at least {at_least} complete trials; this study has {len(complete)}.")
    return complete


def _optuna_pair(study: optuna.Study, plot: str, **kwargs: Any) -> tuple[Any, Any]:
    """The same Optuna plot as a plotly figure and as a matplotlib figure."""
    import optuna.visualization as interactive
    import optuna.visualization.matplotlib as static

    _agg()
    figure = getattr(interactive, plot)(study, **kwargs)
    with warnings.catch_warnings():
        # Optuna's matplotlib plots are marked experimental, and warn on a single trial's flat axis limits.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        axes = getattr(static, plot)(study, **kwargs)
    return figure, np.asarray(axes).flat[0].figure


def _history(ctx: _Context) -> Figure:
    _needs_complete(ctx, 1, "The optimization history")
    pair = _optuna_pair(ctx.study, "plot_optimization_history", **ctx.target())
    caption = f"Validation {ctx.names[0]} of every complete trial in order"
    caption += " (first objective)." if ctx.multi else ", with the best value so far."
    return Figure("optimization_history", "Optimization history", caption, *pair)


def _pareto_front(ctx: _Context) -> Figure:
    if not ctx.multi:
        raise Skip("")
    if len(ctx.names) > 3:
        raise Skip(f"Pareto front: Optuna draws 2 or 3 objectives; this study has {len(ctx.names)}.")
    _needs_complete(ctx, 1, "The Pareto front")
    pair = _optuna_pair(ctx.study, "plot_pareto_front", target_names=ctx.names)
    return Figure(
        "pareto_front",
        "Pareto front",
        f"Trade-off between {', '.join(ctx.names)}; front trials are highlighted, the chosen one is in the summary above.",
        *pair,
    )


def _param_importances(ctx: _Context) -> Figure:
    if not ctx.importances:
        raise Skip(ctx.importance_note)
    names, values = list(ctx.importances)[::-1], list(ctx.importances.values())[::-1]
    import plotly.graph_objects as go

    interactive = go.Figure(go.Bar(x=values, y=names, orientation="h"))
    interactive.update_layout(title="Parameter importances (fANOVA)", xaxis_title=f"importance for {ctx.names[0]}")
    png, ax = _mpl_axes(6.4, max(2.5, 0.45 * len(names) + 1.2))
    ax.barh(names, values, color="#3b75af")
    ax.set(title="Parameter importances (fANOVA)", xlabel=f"importance for {ctx.names[0]}")
    png.tight_layout()
    return Figure(
        "param_importances",
        "Parameter importances",
        f"Share of the variance of {ctx.names[0]} explained by each parameter (fANOVA over the complete trials).",
        interactive,
        png,
    )


def _parallel_coordinate(ctx: _Context) -> Figure:
    _needs_complete(ctx, 2, "The parallel-coordinate plot")
    pair = _optuna_pair(ctx.study, "plot_parallel_coordinate", **ctx.target())
    _resize(pair[1], 10, 5)
    return Figure(
        "parallel_coordinate",
        "Parallel coordinates",
        f"Each line is a complete trial: its parameters and its {ctx.names[0]}.",
        *pair,
    )


def _contour(ctx: _Context) -> Figure:
    complete = _needs_complete(ctx, 2, "The contour plot")
    params = list(ctx.importances)[:CONTOUR_PARAMS] or sorted(set().union(*(t.params for t in complete)))[:CONTOUR_PARAMS]
    if len(params) < 2:
        raise Skip("Contour plot: needs two parameters; this study tunes one (see the slice plot).")
    pair = _optuna_pair(ctx.study, "plot_contour", params=params, **ctx.target())
    return Figure(
        "contour",
        "Contour",
        f"{ctx.names[0]} over the two most important parameters ({params[0]} and {params[1]}), interpolated between trials.",
        *pair,
    )


def _slice(ctx: _Context) -> Figure:
    complete = _needs_complete(ctx, 1, "The slice plot")
    n_params = len(set().union(*(t.params for t in complete)))
    pair = _optuna_pair(ctx.study, "plot_slice", **ctx.target())
    _resize(pair[1], min(4 * n_params, 16), 4)
    for ax in pair[1].axes:
        _readable_log_ticks(ax.xaxis)
    return Figure("slice", "Slice", f"{ctx.names[0]} against each parameter; colour is the trial number.", *pair)


def _intermediate_values(ctx: _Context) -> Figure:
    if ctx.multi or not any(t.intermediate_values for t in ctx.study.get_trials(deepcopy=False)):
        raise Skip("")  # no fidelity steps: nothing was reported
    pair = _optuna_pair(ctx.study, "plot_intermediate_values")
    return Figure(
        "intermediate_values",
        "Intermediate values",
        f"{ctx.names[0]} at each fidelity step; lines that stop early are pruned trials.",
        *pair,
    )


def _fold_spread(ctx: _Context) -> Figure:
    folds = {n: v for n, v in ctx.series.folds.items() if v}
    if not folds:
        raise Skip("")  # one validation split (data.cv_folds 0): no folds
    reverse = ctx.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    shown = sorted(folds, key=lambda n: float(np.mean(folds[n])), reverse=reverse)[:FOLD_TRIALS]
    import plotly.graph_objects as go

    interactive = go.Figure([go.Box(y=folds[n], name=f"#{n}", boxpoints="all") for n in shown])
    title = f"{ctx.names[0]} on each CV fold, best trials first"
    interactive.update_layout(title=title, xaxis_title="trial", yaxis_title=ctx.names[0], showlegend=False)
    png, ax = _mpl_axes(max(6.4, 0.45 * len(shown) + 2), 4.5)
    ax.boxplot([folds[n] for n in shown], tick_labels=[f"#{n}" for n in shown])
    ax.set(title=title, xlabel="trial", ylabel=ctx.names[0])
    png.tight_layout()
    return Figure(
        "cv_fold_spread",
        "Spread across CV folds",
        f"Box per trial over its CV folds (the {len(shown)} best by mean): a wide box means the score depends on the split.",
        interactive,
        png,
    )


def _learning_curves(ctx: _Context) -> Figure:
    curves = {n: {k: s for k, s in c.items() if len(s) > 1} for n, c in ctx.series.curves.items()}
    curves = {n: c for n, c in curves.items() if c}
    if not curves:
        raise Skip("")  # only networks log per-epoch series
    keys = sorted(set().union(*curves.values()))
    from plotly.subplots import make_subplots

    interactive = make_subplots(rows=1, cols=len(keys), subplot_titles=keys)
    png, axes = _mpl_axes(4.2 * len(keys), 3.8, cols=len(keys))
    for col, key in enumerate(keys, 1):
        for number, series in curves.items():
            if key in series:
                steps, values = zip(*series[key])
                interactive.add_scatter(
                    x=steps,
                    y=values,
                    mode="lines",
                    name=f"trial {number}",
                    legendgroup=str(number),
                    showlegend=col == 1,
                    row=1,
                    col=col,
                )
                axes[col - 1].plot(steps, values, label=f"trial {number}")
        axes[col - 1].set(title=key, xlabel="epoch")
    axes[0].legend(fontsize="small")
    png.tight_layout()
    interactive.update_layout(title="Learning curves of the best trials")
    return Figure("learning_curves", "Learning curves", f"Per-epoch series of the {len(curves)} best trials.", interactive, png)


_BUILDERS: list[Callable[[_Context], Figure]] = [
    _history,
    _pareto_front,
    _param_importances,
    _parallel_coordinate,
    _contour,
    _slice,
    _intermediate_values,
    _fold_spread,
    _learning_curves,
]


def _agg() -> None:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")


def _mpl_axes(width: float, height: float, cols: int = 1) -> tuple[Any, Any]:
    _agg()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, cols, figsize=(width, height), squeeze=cols == 1)
    return fig, (axes if cols == 1 else axes[0])


# Log-axis ticks tried in turn (multiples of each power of ten), the densest whose labels do not overlap.
_LOG_SUBS = ((1.0, 2.0, 3.0, 5.0), (1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))


def _readable_log_ticks(axis: Any) -> None:
    """Plain-number labels (50, 100, 200 or 0.01, 0.1) on a log axis, no minor labels, as dense as fits without overlap.

    Matplotlib labels a log axis spanning less than a decade or two with every minor tick in
    `6x10^1` notation, and the labels run into each other (an int range such as n_estimators 50-400).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axis.get_scale() != "log":
        return
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    for subs in _LOG_SUBS:
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        if not _labels_overlap(axis):
            return


def _labels_overlap(axis: Any) -> bool:
    """Whether any two drawn tick labels of `axis` overlap (a draw is needed to measure them)."""
    fig = axis.get_figure(root=True)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    boxes = sorted(
        (t.get_window_extent(renderer) for t in shown_tick_labels(axis) if low <= t.get_position()[0] <= high),
        key=lambda b: b.x0,
    )
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def shown_tick_labels(axis: Any) -> list[Any]:
    """The tick labels of an x `axis` that are drawn with text (major and minor), after a draw."""
    return [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]


def _resize(fig: Any, width: float, height: float) -> None:
    fig.set_size_inches(max(width, fig.get_figwidth()), max(height, fig.get_figheight()))


# ---------------------------------------------------------------------------------------------
# DVC plot tables


def plot_tables(
    study: optuna.Study, names: list[str], importances: dict[str, float], folds: dict[int, list[float]]
) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Header and rows of each DVC plot file: complete trials, importances, scores per CV fold."""
    complete = complete_trials(study)
    params = sorted(set().union(*(t.params for t in complete))) if complete else []
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    trials, best = [], None
    for t in complete:
        best = t.values[0] if best is None else pick(best, t.values[0])
        seconds = t.duration.total_seconds() if t.duration else ""
        trials.append([t.number, *t.values, best, seconds, *(t.params.get(p, "") for p in params)])
    header = ["trial", *names, f"best_{names[0]}", "duration_s", *(f"param_{p}" for p in params)]
    fold_rows = [[n, i, v] for n in sorted(folds) for i, v in enumerate(folds[n], 1)]
    return {
        TRIALS_TABLE: (header, trials),
        IMPORTANCES_TABLE: (["param", "importance"], [[p, v] for p, v in importances.items()]),
        FOLDS_TABLE: (["trial", "fold", names[0]], fold_rows),
    }


# ---------------------------------------------------------------------------------------------
# Writing the report


# The predicted-positive rate is flagged when it is under half, or over twice, the true rate on the test split.
RATE_FLAG = 2.0


@dataclass(frozen=True)
class ClassOutcome:
    """How the final classifier's labels on the test split compare with the truth: confusion matrix and rates."""

    labels: list[str]
    matrix: list[list[int]]  # rows: true label, columns: predicted label, both in `labels` order
    threshold: float | None  # the tuned decision threshold on the positive class's score; None: the default rule
    positive: str | None  # the positive class (binary tasks), the larger label as tunedag's metrics take it

    @property
    def rates(self) -> tuple[float, float] | None:
        """(predicted, true) share of the positive class among the test rows; None with more than two classes."""
        if self.positive is None:
            return None
        i, total = self.labels.index(self.positive), sum(map(sum, self.matrix))
        return sum(row[i] for row in self.matrix) / total, sum(self.matrix[i]) / total

    @property
    def warning(self) -> str | None:
        """A sentence when the predicted-positive rate is far from the true one (a collapsed imbalanced model)."""
        if self.rates is None:
            return None
        predicted, true = self.rates
        if true > 0 and (predicted * RATE_FLAG < true or predicted > true * RATE_FLAG):
            return (
                f"the model predicts {self.positive!s} for {predicted:.1%} of the test rows, where {true:.1%} are: "
                "consider a threshold metric (f1, balanced_accuracy) for tune.metric, or class_weight in the space"
            )
        return None

    def threshold_text(self) -> str:
        if self.threshold is not None:
            return f"{self.threshold:.4g} on the score of class {self.positive!s} (tuned out-of-fold for tune.metric)"
        return "the estimator's own rule (0.5 on the positive class's probability, or the most probable class)"


def class_outcome(y_true: Any, y_pred: Any, threshold: float | None) -> ClassOutcome:
    """The confusion matrix of `y_pred` against `y_true` (labels sorted), with the positive class of a binary task."""
    from sklearn.metrics import confusion_matrix

    values = set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist())
    try:
        labels = sorted(values)  # as scikit-learn orders classes_
    except TypeError:
        labels = sorted(values, key=str)
    matrix = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return ClassOutcome([str(v) for v in labels], matrix, threshold, str(labels[-1]) if len(labels) == 2 else None)


@dataclass(frozen=True)
class ReportContext:
    """What the report states besides the figures: the summary of the tune stage and the test scores."""

    summary: dict
    test_scores: dict[str, float]
    counts: dict[str, int]
    run_url: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)  # what was tuned on: the data file and target, the problem, the warm start
    classes: ClassOutcome | None = None  # a classifier's labels on the test split


def write_report(out_dir: Path, figures: StudyFigures, tables: dict, ctx: ReportContext) -> Path:
    """Write the PNGs, the interactive page, the DVC plot tables and `index.html`; return its path.

    `index.html` embeds the PNGs and needs no network; `interactive.html` carries plotly.js
    inline once, for every interactive figure.
    """
    figure_dir = out_dir / FIGURE_DIR
    figure_dir.mkdir(parents=True, exist_ok=True)
    for old in figure_dir.glob("*.png"):
        old.unlink()
    pngs = {f.name: _save_png(f.png, figure_dir / f"{f.name}.png") for f in figures.figures}
    for name, (header, rows) in tables.items():
        _write_csv(out_dir / name, header, rows)
    (out_dir / INTERACTIVE).write_text(render_interactive(figures, ctx), encoding="utf-8")
    index = out_dir / INDEX
    index.write_text(render_index(figures, pngs, ctx), encoding="utf-8")
    return index


def _save_png(fig: Any, path: Path) -> bytes:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)
    return path.read_bytes()


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}figure{margin:2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555}
.note{color:#7a5b00}code{background:#f3f3f3;padding:0 .2em}.row{display:flex;flex-wrap:wrap;gap:0 3em}"""


def render_index(figures: StudyFigures, pngs: dict[str, bytes], ctx: ReportContext) -> str:
    """The one-page report: summary tables, links, notes and every figure as an embedded PNG."""
    s = ctx.summary
    names = s.get("objectives") or [s["metric"]]
    counts = count_text(ctx.counts)
    parts = [
        f"<h1>Study {_e(s['study_name'])}</h1>",
        f"<p>Trials: {counts}. The final model is trial #{_e(s['best_trial'])}, refit on train + validation.</p>",
        *(["<h2>Data</h2>", _table(["", ""], list(ctx.data.items()))] if ctx.data else []),
        '<div class="row"><div><h2>Best parameters</h2>',
        _table(["parameter", "value"], sorted(s["best_params"].items())),
        "</div><div><h2>Scores</h2>",
        _table(["score", "value"], _score_rows(names, s["best_values"], ctx.test_scores, s.get("score_prefix", "val"))),
        "</div></div>",
        *(_class_outcome_html(ctx.classes) if ctx.classes else []),
        "<h2>Where to look next</h2>",
        _links(ctx),
    ]
    if figures.notes:
        parts += ["<h2>Not drawn</h2>", "<ul>" + "".join(f'<li class="note">{_e(n)}</li>' for n in figures.notes) + "</ul>"]
    for f in figures.figures:
        data = base64.b64encode(pngs[f.name]).decode()
        parts.append(
            f'<figure id="{f.name}"><h2>{_e(f.title)}</h2><img alt="{_e(f.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_e(f.caption)} '
            f'<a href="{INTERACTIVE}#{f.name}">Interactive</a></figcaption></figure>'
        )
    return _page(f"tunedag report: {s['study_name']}", "\n".join(parts))


def render_interactive(figures: StudyFigures, ctx: ReportContext) -> str:
    """Every figure as a plotly chart, plotly.js inline once: opens from disk with no network."""
    from plotly.offline import get_plotlyjs

    body = [
        f"<h1>Study {_e(ctx.summary['study_name'])}: interactive figures</h1>",
        f'<p><a href="{INDEX}">Back to the report</a></p>',
    ]
    for f in figures.figures:
        body.append(f'<h2 id="{f.name}">{_e(f.title)}</h2><p>{_e(f.caption)}</p>')
        body.append(f.interactive.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{f.name}"))
    head = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    return _page(f"tunedag figures: {ctx.summary['study_name']}", "\n".join(body), head)


def _score_rows(names: list[str], values: list[float], test: dict[str, float], prefix: str) -> list[tuple[str, str]]:
    """The best trial's scores (`prefix` cv: cross-validated, val: on the validation split), then the test scores."""
    rows = [(f"{_SCORE_KIND[prefix]} {n} (best trial)", _num(v)) for n, v in zip(names, values)]
    return rows + [
        (k.replace("_", " ", 1) if k.startswith("test_") else k, _num(v))
        for k, v in sorted(test.items())
        if not k.startswith(f"best_{prefix}_")
    ]


def _class_outcome_html(outcome: ClassOutcome) -> list[str]:
    rows = [[f"true {label}", *counts] for label, counts in zip(outcome.labels, outcome.matrix)]
    parts = [
        "<h2>Test split: confusion matrix</h2>",
        _table(["", *(f"predicted {label}" for label in outcome.labels)], rows),
        f"<p>Decision threshold: {_e(outcome.threshold_text())}.</p>",
    ]
    if outcome.rates is not None:
        predicted, true = outcome.rates
        parts.append(f"<p>Predicted {_e(outcome.positive)}: {predicted:.1%} of the test rows; true: {true:.1%}.</p>")
    if outcome.warning:
        parts.append(f'<p class="note">Warning: {_e(outcome.warning)}.</p>')
    return parts


def _links(ctx: ReportContext) -> str:
    items = [f'<li><a href="{INTERACTIVE}">Interactive figures</a> (zoom, hover, select)</li>']
    if ctx.run_url:
        items.append(
            f'<li>MLflow pipeline run with its trials: <a href="{_e(ctx.run_url)}">{_e(ctx.run_url)}</a> '
            "(start the UI with <code>make ui</code>)</li>"
        )
    items += [f"<li>{_e(label)}: <code>{_e(value)}</code></li>" for label, value in ctx.links.items()]
    return "<ul>" + "".join(items) + "</ul>"


def _table(header: list[str], rows: list) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, body: str, head: str = "") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style>{head}</head>\n<body>\n{body}\n</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) and math.isfinite(value) else str(value)


# ---------------------------------------------------------------------------------------------
# Terminal


def format_progress(
    number: int,
    state: str,
    value: float | None,
    best: tuple[int, float] | None,
    finished: int,
    total: int,
    metric: str,
    seconds: float,
    error: str | None = None,
    width: int = 20,
) -> str:
    """One line per finished trial: a bar of finished / total, the trial's result, the best so far.

    Args:
        number, state, value, seconds, error: the trial that just finished (value None unless complete).
        best: `best_so_far(study)` after telling this trial, or None.
        finished, total: finished trials in the study and `tune.n_trials`.
    Returns:
        e.g. `[######--------------]  6/30 trial 7 COMPLETE roc_auc=0.9912 in 1.2s | best 0.9950 (#4)`.
    """
    done = min(width, round(width * finished / total)) if total else width
    bar = "#" * done + "-" * (width - done)
    if value is not None:
        outcome = f" {metric}={value:.5g}"
    else:
        outcome = f" {error.splitlines()[0][:80]}" if error and error.strip() else ""
    line = f"[{bar}] {finished:>{len(str(total))}}/{total} trial {number} {state}{outcome} in {seconds:.1f}s"
    return line + (f" | best {best[1]:.5g} (#{best[0]})" if best else " | no complete trial yet")


def format_summary(ctx: ReportContext, report_index: Path | None = None, ui_command: str = "make ui") -> str:
    """The closing summary of a pipeline run: best parameters, validation and test scores, where to look."""
    s = ctx.summary
    names, prefix = s.get("objectives") or [s["metric"]], s.get("score_prefix", "val")  # cv (k folds) or val (one split)
    counts = count_text(ctx.counts)
    lines = [
        f"tunedag: study {s['study_name']} ({counts})",
        *(f"  {k}: {v}" for k, v in ctx.data.items()),
        f"  best trial #{s['best_trial']}: " + ", ".join(f"{prefix} {n}={_num(v)}" for n, v in zip(names, s["best_values"])),
        "  params: " + (", ".join(f"{k}={v}" for k, v in sorted(s["best_params"].items())) or "(none)"),
    ]
    test = {k.removeprefix("test_"): v for k, v in sorted(ctx.test_scores.items()) if k.startswith("test_")}
    if test:
        lines.append("  test (held out, scored once): " + ", ".join(f"{k}={_num(v)}" for k, v in test.items()))
    if ctx.classes is not None:
        lines += _class_outcome_lines(ctx.classes)
    if report_index is not None:
        lines.append(f"  report: {report_index}  (figures beside it; `dvc plots show` for the DVC plots)")
    if ctx.run_url:
        lines.append(f"  MLflow: `{ui_command}`, then {ctx.run_url}")
    return "\n".join(lines)


def _class_outcome_lines(outcome: ClassOutcome) -> list[str]:
    matrix = "; ".join(f"true {label}: {' '.join(map(str, row))}" for label, row in zip(outcome.labels, outcome.matrix))
    lines = [
        f"  test confusion matrix (predicted {' / '.join(outcome.labels)}): {matrix}",
        f"  decision threshold: {outcome.threshold_text()}",
    ]
    if outcome.rates is not None:
        predicted, true = outcome.rates
        lines.append(f"  predicted {outcome.positive}: {predicted:.1%} of the test rows, true {true:.1%}")
    if outcome.warning:
        lines.append(f"  warning: {outcome.warning}")
    return lines
