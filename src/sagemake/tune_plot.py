"""Draws a tuning run's plot; run by the job's Python (which has matplotlib), not imported by the tool.

Usage: python tune_plot.py SPEC.json OUT.png

SPEC: {"objective": {"Type", "MetricName"}, "trials": [{"name", "created", "value", "params"}], "parameter",
"why", "log", "title"}. Left: the objective of each trial in the order they started, with the best so far.
Right: the objective against the most important hyperparameter. Standard library and matplotlib only.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402


def main(spec_path: str, out: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    goal, parameter = spec["objective"], spec["parameter"]
    trials = sorted(spec["trials"], key=lambda t: (t["created"], t["name"]))
    values = [t["value"] for t in trials]
    best, best_so_far = None, []
    for value in values:
        better = best is None or (value < best if goal["Type"] == "Minimize" else value > best)
        best = value if better else best
        best_so_far.append(best)
    panels = 2 if parameter else 1
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), dpi=100, squeeze=False)
    left = axes[0][0]
    numbers = range(1, len(values) + 1)
    left.plot(numbers, values, "o", label="trial")
    left.step(numbers, best_so_far, where="post", label="best so far")
    left.set(xlabel="trial (in order started)", ylabel=goal["MetricName"], title=f"{goal['Type']} {goal['MetricName']}")
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
    figure.suptitle(spec["title"], fontsize=9)
    figure.tight_layout()
    figure.savefig(out, metadata={"Software": None})
    plt.close(figure)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
