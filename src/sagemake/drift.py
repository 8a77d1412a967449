"""Drift: rows a model was sent compared, feature by feature, with its baseline (a sample of its training data).

Evidently's DataDriftPreset picks each feature's test by its kind and the data's size (numeric: the K-S test's
p-value on small data, the normed Wasserstein distance on large; categorical: chi-square's p-value or the
Jensen-Shannon distance) with its own threshold, and decides which features drifted; the data set drifts when at
least DRIFT_THRESHOLD percent of them did. Its HTML report is written as it is.

Imports Evidently and pandas: only `make drift` runs it, in its own virtualenv (requirements-drift.txt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Feature:
    name: str
    test: str  # Evidently's method, e.g. "K-S p_value"
    score: float
    threshold: float
    drifted: bool


@dataclass
class Result:
    features: list[Feature]
    share: float  # of the features that drifted
    drifted: bool  # share reached the threshold


def compare(baseline: dict, current: dict[str, list], threshold_percent: int, report: Path) -> Result:
    """Each feature of current ({feature: values}) against the baseline's sample; the HTML report written to
    report."""
    import pandas
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    features = baseline["features"]
    kinds = baseline["profile"]
    numeric = [name for name in features if kinds[name]["kind"] == "numeric"]
    categorical = [name for name in features if name not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def frame(columns: dict[str, list]):
        table = pandas.DataFrame({name: columns[name] for name in features})
        for name in numeric:
            table[name] = pandas.to_numeric(table[name], errors="coerce")
        for name in categorical:
            table[name] = table[name].map(lambda value: None if value is None else str(value))
        return Dataset.from_pandas(table, data_definition=definition)

    share = threshold_percent / 100
    snapshot = Report([DataDriftPreset(drift_share=share)], include_tests=True).run(
        current_data=frame(current), reference_data=frame(baseline["sample"]))
    report.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report))
    found = snapshot.dict()
    verdicts = {test["metric_config"]["params"]["column"]: str(getattr(test["status"], "value", test["status"]))
                for test in found["tests"] if test["metric_config"]["params"].get("column")}
    result = []
    for metric in found["metrics"]:
        config = metric["config"]
        if "column" not in config:
            continue
        name = config["column"]
        result.append(Feature(name, config["method"], float(metric["value"]), float(config["threshold"]),
                              verdicts.get(name) == "FAIL"))
    drifted = sum(feature.drifted for feature in result)
    part = drifted / len(result) if result else 0.0
    return Result(result, part, part >= share)
