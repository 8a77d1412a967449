"""Draws a tuning run's plot; run by the job's Python (which has matplotlib), not imported by the tool.

Usage: python tune_plot.py SPEC.json OUT.png

SPEC: {"objective": {"Type", "MetricName"}, "trials": [{"name", "number", "value", "params"}], "parameter",
"why", "log", "title"}. Left: the objective of each trial by its number (the order the trials started, on
whole-number ticks), with the best so far. Right: the objective against the most important hyperparameter. The
run's name titles the figure. Standard library and matplotlib only.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def figure(spec: dict):
    """The plot as a matplotlib Figure (left: objective over trials; right: against one hyperparameter)."""
    goal, parameter = spec["objective"], spec["parameter"]
    trials = sorted(spec["trials"], key=lambda t: t["number"])
    values = [t["value"] for t in trials]
    best, best_so_far = None, []
    for value in values:
        better = best is None or (value < best if goal["Type"] == "Minimize" else value > best)
        best = value if better else best
        best_so_far.append(best)
    panels = 2 if parameter else 1
    drawn, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), dpi=100, squeeze=False)
    left = axes[0][0]
    numbers = [t["number"] for t in trials]
    left.plot(numbers, values, "o", label="trial")
    left.step(numbers, best_so_far, where="post", label="best so far")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial 1, 2, 3: never 1.5
    left.set(xlabel="trial (in the order started)", ylabel=goal["MetricName"],
             title=f"{goal['Type']} {goal['MetricName']}")
    left.legend()
    if parameter:
        right = axes[0][1]
        raw = [t["params"].get(parameter) for t in trials]
        try:
            xs = [float(x) for x in raw]
        except (TypeError, ValueError):
            xs = raw  # categorical: matplotlib places the texts
        right.plot(xs, values, "o")
        if spec.get("log"):
            right.set_xscale("log")
        right.set(xlabel=parameter, ylabel=goal["MetricName"], title=f"most important ({spec['why']})")
        right.title.set_fontsize(8)
    drawn.suptitle(spec["title"], fontsize=9)
    drawn.tight_layout()
    return drawn


def main(spec_path: str, out: str) -> None:
    with open(spec_path) as handle:
        drawn = figure(json.load(handle))
    drawn.savefig(out, metadata={"Software": None})
    plt.close(drawn)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
