"""Every job an MLflow run, written on this machine from what the job left, whatever its image knows of MLflow.

A run per job of every kind, named as the job: a training job (a tuning run's trials nested under the tuning
run's own run), a processing job, a batch transform. Its parameters are the hyperparameters and the settings that
shape the job (`job.*`: instance type and count, image, spot); its metrics every value the job's log printed, each
with its step and time (Executor.metric_series), or the record's final values when the log has none; its tags the
job's name, ARN and status, ENV, the git commit and whether the tree was dirty, the image (and its digest where
known), each channel's data digest, billable seconds and cost (`sagemake.*`); its artefacts the model's
manifest.json and the plots the job wrote, or a tuning run's leaderboard and plot.

Where runs go is MLFLOW_TRACKING_URI: by default a SQLite file in the project (build/mlflow/, its artefacts beside
it), a team's server by URL, SageMaker's managed MLflow by ARN (AWS's sagemaker-mlflow plugin). TRACKING=false
writes nothing. MLflow is imported by a writer process of its own only (`python -m sagemake.tracking`), started
before the job: importing MLflow and opening a store take seconds of CPU, which the job's own time hides, and
sagemake's process never loads MLflow, so it neither competes with it for its own work nor pays for unloading it
at its end. A store that cannot be written is one line, and the job stands as it ended.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sagemake.cli import say
from sagemake.config import Config
from sagemake.jobs.training import experiment_name

STATUSES = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}  # a job's end, in MLflow's words
TAG = "sagemake."  # this tool's tags on a run
PARAM = "job."  # the settings that shape a job, beside its hyperparameters
PLOTS = ("*.png", "*.svg")  # the plots in a fetched model's folder (its own, or its output/), kept with its run
# MLflow's limits on one log_batch call: 1000 entries in all, of which at most 100 params.
BATCH_ENTRIES, BATCH_PARAMS = 1000, 100
# The writer's environment unless the user's says otherwise: an unreachable server is said after one try, not after
# MLflow's default of minutes of retries; no usage reports (their client loads the Databricks SDK).
CLIENT_ENVIRONMENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                      "MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_DISABLE_TELEMETRY": "true"}


def store_uri(config: Config) -> str:
    """MLFLOW_TRACKING_URI, a relative SQLite path made absolute from the project's folder."""
    uri = config["MLFLOW_TRACKING_URI"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(config.root / uri[len("sqlite:///"):])
    return uri


def local_store(config: Config) -> Path | None:
    """The SQLite file of a local store; None for a server."""
    uri = store_uri(config)
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_root(config: Config) -> str | None:
    """Where a local store keeps artefacts: beside its file. A server keeps its own."""
    store = local_store(config)
    return (store.parent / "artifacts").as_uri() if store else None


def millis(stamp: str | None) -> int | None:
    return round(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None


def _never_failing(write):
    """A kind's writer whose failure (a record missing a field, a store that refuses) is one line: never the
    command's, whose job stands as it ended."""
    @functools.wraps(write)
    def guarded(self, executor, record: dict, *args, **kwargs):
        try:
            return write(self, executor, record, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - see above
            name = next((value for key, value in record.items() if key.endswith("JobName")), "?")
            said = " ".join(str(err).split())[:300]
            say(f"tracking: job {name} was not tracked ({type(err).__name__}: {said})")
            return None
    return guarded


class Tracker:
    """The writer (this module run as a process) started as this is made, which opens the store while the job
    runs; each job sent to it when it has ended. With TRACKING=false, nothing is started or written."""

    def __init__(self, config: Config):
        self.config, self.on, self.opened = config, config.flag("TRACKING"), False
        self.writer: subprocess.Popen | None = None
        if self.on:
            self.writer = subprocess.Popen(
                [sys.executable, "-m", "sagemake.tracking", store_uri(config), experiment_name(config),
                 artifact_root(config) or ""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**CLIENT_ENVIRONMENT, **os.environ}, start_new_session=True)  # Ctrl-C is this process's
            atexit.register(self.close)

    def close(self) -> None:
        """The writer stopped: every run it was sent is written by now (each was answered)."""
        if self.writer is not None and self.writer.poll() is None:
            self.writer.kill()
            self.writer.wait()

    def _ask(self, request: dict | None) -> dict:
        """One request to the writer (None: only its answer to opening the store) and its answer."""
        try:
            if request is not None:
                self.writer.stdin.write(json.dumps(request) + "\n")
                self.writer.stdin.flush()
            answer = self.writer.stdout.readline()
        except OSError:
            answer = ""
        return json.loads(answer) if answer else {"error": f"MLflow's writer stopped (exit {self.writer.poll()})"}

    def ready(self, job: str) -> bool:
        """Whether runs can be written; when not, one line naming the store, saying the job was not tracked."""
        if not self.on or self.opened:
            return self.on
        answer = self._ask(None)  # waits for the store to be open
        if "error" in answer:
            say(f"tracking: MLFLOW_TRACKING_URI={self.config['MLFLOW_TRACKING_URI']} cannot be written "
                f"({answer['error']}): job {job} ran but was not tracked; fix the URI or the server (or "
                "TRACKING=false)")
            self.on = False  # said once: the other jobs of this command were not tracked either
            self.close()
        self.opened = self.on
        return self.on

    # --- one kind each: what its record says, as a run ---
    @_never_failing
    def training(self, executor, record: dict, model: Path | None = None, parent: str | None = None,
                 quiet: bool = False) -> str | None:
        """A training job (a tuning run's trial when parent is given); model: its fetched folder (manifest, plots)."""
        name = record["TrainingJobName"]
        if not self.ready(name):
            return None
        from sagemake.pricing import ledger_entry

        tagged = executor.tags(name)
        resources = record.get("ResourceConfig", {})
        spec = record["AlgorithmSpecification"]
        params = {**record.get("HyperParameters", {}),
                  **_settings(resources.get("InstanceType"), resources.get("InstanceCount"), spec["TrainingImage"],
                              record.get("EnableManagedSpotTraining", False), resources.get("VolumeSizeInGB"))}
        entry = ledger_entry(record, executor.prices())
        tags = {**_common(record, name, record.get("TrainingJobArn"), record["TrainingJobStatus"], tagged),
                **_money(entry.billable, entry.cost),
                **_image(spec["TrainingImage"], executor.provenance(record).get("image_digest"))}
        points = _points(executor.metric_series(name), millis(_end(record)))
        finals = [[m["MetricName"], m["Value"], millis(_stamp(m.get("Timestamp"))) or millis(_end(record)), 0]
                  for m in record.get("FinalMetricDataList", [])]
        printed = {point[0] for point in points}
        artifacts = []
        if model is not None:
            artifacts = [model / "manifest.json", *sorted(p for pattern in PLOTS for p in model.rglob(pattern))]
        return self._write(name, record, record["TrainingJobStatus"], params, tags,
                           points + [f for f in finals if f[0] not in printed], artifacts, parent, quiet)

    @_never_failing
    def tuning(self, executor, record: dict, folder: Path, model: Path | None = None) -> str | None:
        """A tuning run, with each of its trials as a run nested under it; its objective per trial as a series."""
        name = record["HyperParameterTuningJobName"]
        if not self.ready(name):
            return None
        import json

        from sagemake.jobs.training import tags as request_tags

        config = record["HyperParameterTuningJobConfig"]
        goal, limits = config["HyperParameterTuningJobObjective"], config["ResourceLimits"]
        definition = record["TrainingJobDefinition"]
        resources = definition.get("ResourceConfig", {})
        ranges = {entry["Name"]: _range(kind, entry) for kind, entries in config["ParameterRanges"].items()
                  for entry in entries}
        params = {**definition.get("StaticHyperParameters", {}), **ranges,
                  **_settings(resources.get("InstanceType"), resources.get("InstanceCount"),
                              definition["AlgorithmSpecification"]["TrainingImage"],
                              definition.get("EnableManagedSpotTraining", False), resources.get("VolumeSizeInGB")),
                  f"{PARAM}objective": f"{goal['Type']} {goal['MetricName']}",
                  f"{PARAM}strategy": config.get("Strategy", ""),
                  f"{PARAM}max_jobs": limits["MaxNumberOfTrainingJobs"],
                  f"{PARAM}parallel_jobs": limits["MaxParallelTrainingJobs"]}
        requested = folder / "request.json"
        tagged = request_tags(json.loads(requested.read_text())) if requested.is_file() else {}
        trials = sorted(record.get("TrainingJobSummaries", []), key=lambda s: (s.get("CreationTime") or "",
                                                                                s["TrainingJobName"]))
        objective = [[goal["MetricName"], s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                      millis(s.get("TrainingEndTime")) or millis(_end(record)), number]
                     for number, s in enumerate(trials, 1) if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        best = (record.get("BestTrainingJob") or {}).get("TrainingJobName")
        tags = {**_common(record, name, record.get("HyperParameterTuningJobArn"),
                          record["HyperParameterTuningJobStatus"], tagged),
                **({f"{TAG}best_trial": best} if best else {}), f"{TAG}trials": str(len(trials))}
        artifacts = [path for path in (folder / "leaderboard.csv", folder / "tuning.png") if path.is_file()]
        parent = self._write(name, record, record["HyperParameterTuningJobStatus"], params, tags, objective,
                             artifacts)
        if parent is None:
            return None
        for trial in trials:
            try:
                found = executor.describe(trial["TrainingJobName"])
            except Exception as err:  # noqa: BLE001 - a trial whose record is gone (make clean-jobs): the others go on
                say(f"tracking: trial {trial['TrainingJobName']}: not tracked ({err})")
                continue
            self.training(executor, found, model if trial["TrainingJobName"] == best else None, parent, quiet=True)
        say(f"tracking: its {len(trials)} trial(s) are nested under it")
        return parent

    @_never_failing
    def processing(self, executor, record: dict, data: dict[str, str]) -> str | None:
        """A processing job; data: the digest of each of its inputs and outputs."""
        name = record["ProcessingJobName"]
        if not self.ready(name):
            return None
        from sagemake.jobs import ran
        from sagemake.pricing import PROCESSING, cost

        cluster = record.get("ProcessingResources", {}).get("ClusterConfig", {})
        count, app = cluster.get("InstanceCount", 1), record["AppSpecification"]
        params = {**_settings(cluster.get("InstanceType"), count, app["ImageUri"], False,
                              cluster.get("VolumeSizeInGB")),
                  f"{PARAM}entrypoint": " ".join(app.get("ContainerEntrypoint", [])),
                  f"{PARAM}arguments": " ".join(app.get("ContainerArguments", []))}
        seconds = ran(record, "Processing")
        hourly = executor.prices().hourly(cluster["InstanceType"], PROCESSING).hourly \
            if cluster.get("InstanceType") else None
        tagged = {**self._here(), **{f"data:{k}": f"digest={v}" for k, v in data.items() if v}}
        tags = {**_common(record, name, record.get("ProcessingJobArn"), record["ProcessingJobStatus"], tagged),
                **_money(seconds * count, cost(hourly, seconds, count)),
                **_image(app["ImageUri"], None)}
        points = _points(executor.processing().metric_series(name), millis(_end(record)))
        return self._write(name, record, record["ProcessingJobStatus"], params, tags, points, [])

    @_never_failing
    def transform(self, executor, record: dict, files: int, model: dict) -> str | None:
        """A batch transform; files: how many it transformed; model: the provenance of the model it served."""
        name = record["TransformJobName"]
        if not self.ready(name):
            return None
        from sagemake.jobs import ran
        from sagemake.pricing import TRANSFORM, cost

        resources = record["TransformResources"]
        params = {**_settings(resources["InstanceType"], resources["InstanceCount"], model.get("image"), False, None),
                  f"{PARAM}batch_strategy": record.get("BatchStrategy", ""),
                  f"{PARAM}max_payload_mb": record.get("MaxPayloadInMB", ""),
                  f"{PARAM}max_concurrent": record.get("MaxConcurrentTransforms", "")}
        seconds, end = ran(record, "Transform"), millis(_end(record))
        hourly = executor.prices().hourly(resources["InstanceType"], TRANSFORM).hourly
        tags = {**_common(record, name, record.get("TransformJobArn"), record["TransformJobStatus"], self._here()),
                **_money(seconds * resources["InstanceCount"], cost(hourly, seconds, resources["InstanceCount"])),
                **_image(model.get("image"), None),
                f"{TAG}model_job": record.get("ModelName", ""), f"{TAG}model_sha256": model.get("sha256", "")}
        return self._write(name, record, record["TransformJobStatus"], params, tags, [["files", files, end, 0]], [])

    def _here(self) -> dict:
        """The tags a kind without sagemake's own tags takes from here: ENV, the git commit and dirty flag."""
        from sagemake.jobs.training import git_state

        sha, dirty = git_state(self.config.root)
        return {"env": self.config.env, "git-sha": sha, "git-dirty": "true" if dirty else "false"}

    # --- the one writer ---
    def _write(self, name: str, record: dict, status: str, params: dict, tags: dict, points: list[list],
               artifacts: list[Path], parent: str | None = None, quiet: bool = False) -> str | None:
        """One run, sent to the writer (write_run). Returns its id, or None (said in one line) when the store
        refused it."""
        if parent:
            tags["mlflow.parentRunId"] = parent
        request = {"name": name, "start": millis(record.get("CreationTime")), "end": millis(_end(record)),
                   "status": STATUSES.get(status, "FAILED"),
                   "params": {key: str(value) for key, value in params.items() if value not in (None, "")},
                   "tags": {key: str(value) for key, value in tags.items() if value not in (None, "")},
                   "metrics": points,
                   "artifacts": [[str(path), path.parent.relative_to(artifacts[0].parent).as_posix()]
                                 for path in artifacts if path.is_file()]}
        answer = self._ask(request)
        if "error" in answer:
            say(f"tracking: MLFLOW_TRACKING_URI={self.config['MLFLOW_TRACKING_URI']} refused job {name}'s run "
                f"({answer['error']}): it was not tracked")
            return None
        run = answer["run"]
        if not quiet:
            where = " (`make ui` shows it)" if local_store(self.config) else ""
            say(f"tracking: job {name} is run {run} of experiment {experiment_name(self.config)} in "
                f"{self.config['MLFLOW_TRACKING_URI']}{where}")
        return run


def _points(series: dict[str, list[dict]], end: int | None) -> list[list]:
    """A job's metric series as MLflow's metrics: [name, value, time in ms (when its line was printed, else when the
    job ended), step]."""
    return [[name, point["Value"], millis(point.get("Timestamp")) or end, point["Step"]]
            for name, points in series.items() for point in points]


def _settings(instance_type, count, image, spot, volume) -> dict:
    return {f"{PARAM}instance_type": instance_type, f"{PARAM}instance_count": count, f"{PARAM}image": image,
            f"{PARAM}spot": "true" if spot else "false", f"{PARAM}volume_gb": volume}


def _common(record: dict, name: str, arn: str | None, status: str, tagged: dict) -> dict:
    """The tags of every kind: the job, its status, ENV, git, each channel's data digest (data:<channel> tags)."""
    found = {f"{TAG}job": name, f"{TAG}arn": arn, f"{TAG}status": status, f"{TAG}env": tagged.get("env"),
             f"{TAG}failure_reason": record.get("FailureReason"), f"{TAG}git_commit": tagged.get("git-sha"),
             f"{TAG}git_dirty": tagged.get("git-dirty"), "mlflow.source.git.commit": tagged.get("git-sha"),
             f"{TAG}tuning_job": tagged.get("tuning")}
    for key, value in tagged.items():
        if key.startswith("data:"):
            words = dict(word.split("=", 1) for word in value.split() if "=" in word)
            found[f"{TAG}data.{key[len('data:'):]}"] = words.get("digest", value)
    return found


def _money(billable, dollars) -> dict:
    """Billable seconds and their cost; a cost whose price is not known says so (never 0)."""
    said = f"{dollars:.6f}" if dollars is not None else "unknown" if billable is not None else None
    return {f"{TAG}billable_seconds": billable, f"{TAG}cost_usd": said}


def _image(image: str | None, digest: str | None) -> dict:
    return {f"{TAG}image": image, f"{TAG}image_digest": digest}


def _range(kind: str, entry: dict) -> str:
    if kind.startswith("Categorical"):
        return "|".join(entry["Values"])
    scale = ":log" if entry.get("ScalingType") == "Logarithmic" else ""
    return f"{entry['MinValue']}:{entry['MaxValue']}{scale}"


def _end(record: dict) -> str | None:
    """When the job ended (its kind's end time), or its last change."""
    for field in ("TrainingEndTime", "ProcessingEndTime", "TransformEndTime", "HyperParameterTuningEndTime",
                  "LastModifiedTime"):
        if record.get(field):
            return record[field]
    return None


def _stamp(value) -> str | None:
    return value if isinstance(value, str) else None


# --- the writer: this module run as a process, the one place MLflow is imported ---
def _said(err: Exception) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def open_store(uri: str, experiment: str, artifacts: str):
    """MLflow's client on the store, and the experiment's id (made when missing, its artefacts at artifacts)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    # This process's store for the plugins too: the ARN's request headers and a server's artefact repository are
    # found through the tracking URI in force, not the client's.
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        try:
            return client, client.create_experiment(experiment, artifact_location=artifacts or None)
        except Exception:  # made meanwhile by another job
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
    return client, found.experiment_id


def write_run(client, experiment: str, request: dict) -> str:
    """One run: made with its tags, its params and metrics in as few log_batch calls as MLflow's limits allow, its
    artefacts, ended as the job ended. Made, then refused: ended FAILED rather than left RUNNING."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, start_time=request["start"], tags=request["tags"],
                            run_name=request["name"]).info.run_id
    try:
        params = [Param(key, value) for key, value in request["params"].items()]
        metrics = [Metric(key, value, stamp or 0, step) for key, value, stamp, step in request["metrics"]]
        while params or metrics:
            some, params = params[:BATCH_PARAMS], params[BATCH_PARAMS:]
            more, metrics = metrics[:BATCH_ENTRIES - len(some)], metrics[BATCH_ENTRIES - len(some):]
            client.log_batch(run, params=some, metrics=more)
        for path, folder in request["artifacts"]:
            client.log_artifact(run, path, None if folder == "." else folder)
        client.set_terminated(run, request["status"], end_time=request["end"])
    except Exception:
        with contextlib.suppress(Exception):
            client.set_terminated(run, "FAILED")
        raise
    return run


def serve(uri: str, experiment: str, artifacts: str) -> None:
    """Open the store at once and answer whether it opened, then write each run read from stdin (one JSON object
    a line), answering its id or why not, until stdin ends (the command is done, or gone). Answers go to stdout
    alone: anything else printed goes to stderr. Ends without unloading MLflow (seconds of teardown that would
    change nothing)."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def answer(said: dict) -> None:
        answers.write(json.dumps(said) + "\n")
        answers.flush()

    try:
        try:
            client, found = open_store(uri, experiment, artifacts)
        except Exception as err:  # noqa: BLE001 - said by the command, which goes on untracked
            answer({"error": _said(err)})
            return
        answer({"opened": True})
        for line in sys.stdin:
            try:
                answer({"run": write_run(client, found, json.loads(line))})
            except Exception as err:  # noqa: BLE001 - said by the command; its job stands as it ended
                answer({"error": _said(err)})
    except BrokenPipeError:  # the command is gone
        pass
    finally:
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
