"""The plots a run leaves, read from their figure objects (not their pixels): tuning.png numbers the trials as they
started, with whole-number ticks; roc.png has its chance diagonal and pr.png its baseline; each names its job."""

import numpy as np

from sagemake import tune_plot  # matplotlib: the job's requirements are in the test virtualenv (requirements-dev.txt)
from sagemake.jobs.tuning import trial_number

RUN = "acme-261207093000abc"


def spec(trials):
    return {"objective": {"Type": "Maximize", "MetricName": "auc"}, "parameter": "depth", "why": "PED-ANOVA",
            "log": False, "title": RUN, "trials": trials}


def visible_labels(axes) -> list[str]:
    axes.figure.canvas.draw()
    low, high = axes.get_xlim()
    return [label.get_text() for label, tick in zip(axes.get_xticklabels(), axes.get_xticks(), strict=True)
            if low <= tick <= high]


def test_tuning_plot_numbers_trials_as_they_started_with_whole_number_ticks():
    # Listed out of order (trial 002's record made first, two trials started side by side): each by its number.
    names = [f"{RUN}-002-0badc0de", f"{RUN}-001-deadbeef", f"{RUN}-003-feedf00d"]
    trials = [{"name": name, "number": trial_number(name), "value": value, "params": {"depth": depth}}
              for name, value, depth in zip(names, [0.9, 0.8, 0.85], ["3", "2", "4"], strict=True)]
    figure = tune_plot.figure(spec(trials))
    left, right = figure.axes
    points, best = left.get_lines()
    assert list(points.get_xdata()) == [1, 2, 3] and list(points.get_ydata()) == [0.8, 0.9, 0.85]
    assert list(best.get_ydata()) == [0.8, 0.9, 0.9]
    labels = visible_labels(left)
    assert labels == ["1", "2", "3"]
    assert figure._suptitle.get_text() == RUN
    assert right.get_xlabel() == "depth"


def test_tuning_plot_of_many_trials_keeps_whole_number_ticks():
    trials = [{"name": f"{RUN}-{n:03d}-00000000", "number": n, "value": n / 40, "params": {"depth": "2"}}
              for n in range(1, 24)]
    labels = visible_labels(tune_plot.figure(spec(trials)).axes[0])
    assert labels and all(label.isdigit() for label in labels)


def test_roc_has_its_chance_diagonal_and_pr_its_baseline_and_no_job_name_in_the_model():
    from trainer.train import curve_figures  # the fixture trainer's, drawn as the example's

    labels = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.7, 0.6])
    figures = curve_figures(labels, scores, {"validation:roc_auc": 0.9, "validation:pr_auc": 0.95})
    roc, pr = figures["roc.png"].axes[0], figures["pr.png"].axes[0]
    chance = {line.get_label(): line for line in roc.get_lines()}["chance"]
    assert list(chance.get_xdata()) == [0, 1] and list(chance.get_ydata()) == [0, 1]
    (baseline,) = [line for line in pr.get_lines() if line.get_label().startswith("baseline")]
    assert list(baseline.get_ydata()) == [0.625, 0.625]  # 5 positives in 8
    assert {figure._suptitle for figure in figures.values()} == {None}  # the model's bytes never name its job
