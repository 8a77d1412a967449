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
writes nothing.

The command never waits for MLflow: importing it and opening a store take seconds. It writes what a run needs as a
pending record (JSON, whole or not at all) into a queue folder (queue/ beside a local store; build/mlflow/queue/ in
the project for a server), and starts a writer of its own (this module run as a process: the one place MLflow is
imported) in a session of its own, its output in the queue's writer.log, which outlives the command, Ctrl-C and a
closed terminal. One writer at a time (a lock on the queue's writer.lock; a second one finding it held leaves the
queue to its holder, which writes until the queue is empty). A run is written once however often its record is
(a writer killed between writing the run and removing the record): it is looked up by its job's tag first, and a
run left half written is remade. `make ui`, which reads the store, first waits for
the queue to be written (drain). A record that cannot be written (the store unreachable) is kept, retried by the
next writer, and said in one line, with the log, by the next command that drains or tracks; the job stands.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import UserError, say
from sagemake.config import Config
from sagemake.debug import mask
from sagemake.jobs import TERMINAL
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
PENDING = "*.pending.json"  # a run to write, in the queue folder
LOCK, LOG, FAILED = "writer.lock", "writer.log", "failed.json"  # beside them: the writer's lock, output, last failure
BACKGROUND_NICENESS = 10  # a writer nobody waits for yields the cores to the command's end and what comes next


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


def queue_folder(config: Config) -> Path:
    """Where runs wait to be written: beside a local store; in the project's build/mlflow/ for a server."""
    store = local_store(config)
    return (store.parent if store else config.root / "build" / "mlflow") / "queue"


def pending(queue: Path) -> list[Path]:
    """The records waiting, oldest first (a tuning run before its trials)."""
    return sorted(path for path in queue.glob(PENDING) if not path.name.startswith("."))


def drain(config: Config) -> None:
    """Every pending run written, before the store is read: waits for a writer at work, then writes what is left;
    says what could not be written."""
    queue = queue_folder(config)
    waiting = pending(queue)
    if waiting:
        say(f"tracking: writing {len(waiting)} pending run(s) first")  # each to the store its command named
        with open(_log(queue), "a") as log:
            subprocess.run([sys.executable, "-m", "sagemake.tracking", str(queue), "--wait"],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                           env={**CLIENT_ENVIRONMENT, **os.environ})
    tell_failure(queue)


def tell_failure(queue: Path) -> None:
    """The last writer's failure, in one line, once."""
    failed = jsonfile.read(queue / FAILED, None)
    if failed:
        (queue / FAILED).unlink(missing_ok=True)
        left = len(pending(queue))
        say(f"tracking: job {failed['job']}'s run could not be written to MLFLOW_TRACKING_URI={failed['uri']} "
            f"({failed['error']}); {left} run(s) wait in {queue} and are retried by the next command (log: "
            f"{queue / LOG}): once the server answers they are written; a run queued for a wrong URI keeps its "
            f"URI: delete its file ({queue}/*-{failed['job']}.pending.json) to drop it")


def _log(queue: Path) -> Path:
    queue.mkdir(parents=True, exist_ok=True)
    return queue / LOG


def start_writer(queue: Path) -> None:
    """A writer for the queue, detached: its own session, no terminal, its output to the log; it outlives this
    process."""
    with open(_log(queue), "a") as log:
        subprocess.Popen([sys.executable, "-m", "sagemake.tracking", str(queue)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, env={**CLIENT_ENVIRONMENT, **os.environ},
                         start_new_session=True)


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
    """Each job, once ended, queued as a run (a pending record) and a writer started for it; the last writer's
    failure said as this is made. With TRACKING=false, nothing is queued."""

    def __init__(self, config: Config):
        self.config, self.on = config, config.flag("TRACKING")
        if self.on:
            tell_failure(queue_folder(config))

    # --- one kind each: what its record says, as a run ---
    @_never_failing
    def ended(self, read, status: str, write) -> None:
        """A job a Ctrl-C or a failure cut short is a run too, once it has ended (Stopped, Failed): write(record)
        with the record read() gives now; one still running (on SageMaker) is not one yet, and a record that cannot
        be read is said in one line."""
        if not self.on:
            return
        try:
            record = read()
        except (UserError, OSError, ValueError) as err:
            say(f"tracking: a job cut short was not written as a run: its record could not be read ({err})")
            return
        if record.get(status) in TERMINAL:
            write(record)

    def training(self, executor, record: dict, model: Path | None = None, parent: str | None = None,
                 quiet: bool = False) -> str | None:
        """A training job (a tuning run's trial when parent is given); model: its fetched folder (manifest, plots)."""
        name = record["TrainingJobName"]
        if not self.on:
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
        if not self.on:
            return None

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
        if trials:  # the data it tuned on: tagged on every trial (as SageMaker puts them), not on its own request
            with contextlib.suppress(UserError):
                tagged = {**{key: value for key, value in executor.tags(trials[0]["TrainingJobName"]).items()
                             if key.startswith("data:")}, **tagged}
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
        if not self.on:
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
        if not self.on:
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
        """One run, queued for the writer (write_run); parent: its tuning run's job. Returns the job's name."""
        run = {"name": name, "parent": parent, "start": millis(record.get("CreationTime")), "end": millis(_end(record)),
               "status": STATUSES.get(status, "FAILED"),
               # Masked as the terminal masks them: a run may go to a team's server.
               "params": {key: mask(str(value)) for key, value in params.items() if value not in (None, "")},
               "tags": {key: mask(str(value)) for key, value in tags.items() if value not in (None, "")},
               "metrics": points,
               "artifacts": [[str(path), path.parent.relative_to(artifacts[0].parent).as_posix()]
                             for path in artifacts if path.is_file()]}
        queue = queue_folder(self.config)
        jsonfile.write(queue / f"{time.time_ns()}-{name}.pending.json",
                       {"uri": store_uri(self.config), "experiment": experiment_name(self.config),
                        "artifacts": artifact_root(self.config) or "", "run": run}, indent=None)
        start_writer(queue)
        if not quiet:
            where = " (`make ui` shows it)" if local_store(self.config) else ""
            say(f"tracking: job {name} is written as a run of experiment {experiment_name(self.config)} in "
                f"{self.config['MLFLOW_TRACKING_URI']} in the background{where}")
        return name


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


def written(client, experiment: str, job: str):
    """The run of a job, when one was written whole; a run left half written (its writer killed) is deleted."""
    whole = None
    for run in client.search_runs([experiment], f"tags.`{TAG}job` = '{job}'"):
        if run.info.status == "RUNNING":  # ended as the job ended when whole: never RUNNING
            client.delete_run(run.info.run_id)
        else:
            whole = run.info.run_id
    return whole


def write_run(client, experiment: str, request: dict) -> str:
    """One run, once: the job's run when already written; else made with its tags, its params and metrics in as few
    log_batch calls as MLflow's limits allow, its artefacts, ended as the job ended. Made, then refused: deleted,
    to be made again from its record."""
    from mlflow.entities import Metric, Param

    found = written(client, experiment, request["name"])
    if found:
        return found
    tags = dict(request["tags"])
    if request.get("parent"):
        parent = written(client, experiment, request["parent"])
        if parent is None:
            raise LookupError(f"its tuning run {request['parent']} is not written")
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment, start_time=request["start"], tags=tags,
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
            client.delete_run(run)
        raise
    return run


def write_queue(queue: Path, wait: bool = False) -> None:
    """Write every pending run of the queue, one writer at a time: with the lock held by another writer, leave the
    queue to it (wait: wait for it, then write what is left). A record written is removed; one that fails is kept
    (said in failed.json) and not tried again by this writer."""
    tried: set[str] = set()
    while True:
        with open(queue / LOCK, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its holder writes until the queue is empty
                print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} another writer holds {queue / LOCK}: the queue is "
                      "left to it", flush=True)
                return
            _write_all(queue, tried)
            if not pending(queue):
                (queue / FAILED).unlink(missing_ok=True)  # every run written: an earlier failure is past
        # A record queued as the lock was let go: its own writer found it held.
        if not [path for path in pending(queue) if path.name not in tried]:
            return


def _write_all(queue: Path, tried: set[str]) -> None:
    stores: dict[tuple, tuple | Exception] = {}  # each store opened once (or failed once)
    while todo := [path for path in pending(queue) if path.name not in tried]:
        for path in todo:
            record = jsonfile.read(path, None)
            if record is None:
                if path.exists():  # not JSON: never written by sagemake whole
                    tried.add(path.name)
                continue
            key = (record["uri"], record["experiment"], record["artifacts"])
            try:
                if key not in stores:
                    try:
                        stores[key] = open_store(*key)
                    except Exception as err:  # noqa: BLE001 - kept, for the records of that store
                        stores[key] = err
                if isinstance(stores[key], Exception):
                    raise stores[key]
                client, experiment = stores[key]
                run = write_run(client, experiment, record["run"])
                path.unlink(missing_ok=True)
                print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} job {record['run']['name']} is run {run} of "
                      f"experiment {record['experiment']} in {record['uri']}", flush=True)
            except Exception as err:  # noqa: BLE001 - kept for the next writer, said by the next command
                tried.add(path.name)
                print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} job {record['run']['name']}: not written to "
                      f"{record['uri']}: {type(err).__name__}: {_said(err)}", flush=True)
                jsonfile.write(queue / FAILED, {"job": record["run"]["name"], "uri": record["uri"],
                                                "error": _said(err)})


if __name__ == "__main__":
    waited_for = sys.argv[2:] == ["--wait"]  # by a reader; else in the background, behind the user's own work
    if not waited_for:
        os.nice(BACKGROUND_NICENESS)
    write_queue(Path(sys.argv[1]), wait=waited_for)
    sys.stdout.flush()
    os._exit(0)  # without unloading MLflow: seconds of teardown that would change nothing
