"""`make report`'s charts, read from their Plotly figure objects, and its cost kept off every other command's path."""

import os
import re
import subprocess
import sys

from conftest import ROOT

from sagemake.executors.history import Job
from sagemake.pricing import Entry
from sagemake.report import learning_figure, page, tuning_figure

RUN = "acme-261207093000abc"


def run_record(summaries):
    return {
        "HyperParameterTuningJobName": RUN, "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "rmse"},
            "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "alpha", "MinValue": "0.001",
                                                               "MaxValue": "1", "ScalingType": "Logarithmic"}],
                                "CategoricalParameterRanges": [{"Name": "solver", "Values": ["a", "b"]}]}},
        "TrainingJobSummaries": summaries,
    }


def summary(number, rmse, alpha, solver):
    return {"TrainingJobName": f"{RUN}-{number:03d}-0000000{number}", "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"alpha": alpha, "solver": solver},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "rmse", "Value": rmse}}


def test_the_tuning_chart_numbers_trials_as_they_started_on_whole_number_ticks_and_plots_each_hyperparameter():
    failed = {"TrainingJobName": f"{RUN}-004-00000004", "TrainingJobStatus": "Failed",
              "TunedHyperParameters": {"alpha": "0.5", "solver": "a"}}
    figure = tuning_figure(run_record([summary(3, 0.5, "0.01", "b"), summary(1, 0.7, "0.1", "a"), failed,
                                       summary(2, 0.6, "0.001", "a")]))
    trials, best, alpha, solver = figure.data
    assert list(trials.x) == [1, 2, 3] and list(trials.y) == [0.7, 0.6, 0.5]
    assert list(best.y) == [0.7, 0.6, 0.5]  # Minimize: the best so far only falls
    assert (figure.layout.xaxis.tickmode, figure.layout.xaxis.tick0, figure.layout.xaxis.dtick) == ("linear", 1, 1)
    assert list(alpha.x) == [0.1, 0.001, 0.01] and figure.layout.xaxis2.type == "log"
    assert list(solver.x) == ["a", "a", "b"]
    assert figure.layout.title.text == RUN


def test_learning_curves_plot_every_metric_over_whole_steps_titled_with_the_job():
    series = {"loss": [{"Step": n, "Value": 1 / (n + 1), "Timestamp": f"2026-12-07T09:30:0{n}"} for n in range(3)],
              "auc": [{"Step": 0, "Value": 0.9}]}
    job = Job("acme-1a2b3c4-261207-093000-000abcde", {"TrainingJobStatus": "Completed"}, {}, Entry(1, 0.1, None, True),
              series=series)
    figure = learning_figure(job)
    assert {trace.name: list(trace.x) for trace in figure.data} == {"auc": [0], "loss": [0, 1, 2]}
    assert (figure.layout.xaxis.tickmode, figure.layout.xaxis.dtick) == ("linear", 1)  # never step 0.5
    assert figure.layout.title.text == "acme-1a2b3c4-261207-093000-000abcde (Completed)"
    long = Job(job.name, job.record, {}, job.bill, series={"loss": [{"Step": n, "Value": 1.0} for n in range(250)]})
    assert learning_figure(long).layout.xaxis.dtick == 25


def test_an_empty_report_says_so_and_carries_no_script():
    text = page("acme", "locally, in jobs/", "rmse", [], [], {})
    assert "No jobs of acme yet (locally, in jobs/): <code>make train</code> runs one" in text
    assert "<script" not in text


def imported(*target: str, **env: str) -> str:
    """What `python -m sagemake TARGET` imports, as -X importtime lists it (each module an import statement loads:
    the target's own module, loaded by importlib, is not listed)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sagemake", *target], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_make_jobs_and_plan_never_import_the_report_or_plotly(example_data, tmp_path):
    for target in ("jobs", "plan"):
        modules = imported(target, DATA_DIR=str(example_data), JOBS_DIR=str(tmp_path))
        assert not re.search(r"\| +(plotly|sagemake\.report)\b", modules)
    assert re.search(r"\| +sagemake\.report\b", imported("report", JOBS_DIR=str(tmp_path / "none yet")))


def test_the_ledger_shows_a_column_for_each_jobs_main_metric_as_make_jobs_does():
    def job(name, created, metric, value):
        record = {"TrainingJobName": name, "TrainingJobStatus": "Completed", "CreationTime": created,
                  "TrainingTimeInSeconds": 60, "FinalMetricDataList": [{"MetricName": metric, "Value": value}],
                  "AlgorithmSpecification": {"TrainingImage": "img", "MetricDefinitions": [
                      {"Name": metric, "Regex": f"{metric}=(.*)"}]}}
        return Job(name, record, {"git-sha": "1a2b3c4"}, Entry(60, 0.01, None, True))

    found = [job("acme-new", "2026-12-07T10:00:00", "auc", 0.91), job("acme-old", "2026-12-07T09:00:00", "rmse", 0.5)]
    text = page("acme", "locally, in jobs/", "", found, [], {})
    ledger = re.search(r"<table id=ledger>.*?</table>", text, re.S).group(0)
    header = re.findall(r"<th[^>]*>(.*?)</th>", ledger)
    assert header[7:9] == ["auc", "rmse"]
    rows = {row[0]: row for row in (re.findall(r"<td[^>]*>(.*?)</td>", tr)
                                    for tr in re.findall(r"<tr>(.*?)</tr>", ledger, re.S)) if row}
    assert rows["acme-new"][7:9] == ["0.9100", "-"] and rows["acme-old"][7:9] == ["-", "0.5000"]


def test_a_jobs_settings_name_the_job_whose_checkpoints_it_started_from():
    record = {"TrainingJobStatus": "Completed", "AlgorithmSpecification": {"TrainingImage": "img"},
              "CheckpointConfig": {"S3Uri": "file:///jobs/checkpoints/acme-2/"}}  # every local job has a place
    bill = Entry(60, 0.01, None, True)
    assert Job("acme-2", record, {"checkpoint-from": "acme-1"}, bill).settings["checkpoint from"] == "acme-1"
    assert Job("acme-3", record, {}, bill).settings["checkpoint from"] == "-"
