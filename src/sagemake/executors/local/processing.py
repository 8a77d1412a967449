"""Processing jobs on this machine: the image in the engine with SageMaker's processing mounts, or sagemake's own
image as a process with the same paths; under the guard, MaxRuntime enforced; the record in DescribeProcessingJob's
shape, settled as Failed on read when its executor is gone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import UserError, say
from sagemake.clock import now
from sagemake.contract import layout
from sagemake.executors.interface import Executor
from sagemake.executors.local import records
from sagemake.jobs.processing import LOG, MESSAGE_LIMIT, RECORD, REQUEST, names_pattern, new_record, record_config, save
from sagemake.jobs.training import metric_definitions, metric_points, printed_metrics


class LocalProcessing:
    """The local executor's machinery: its runtimes, the guard, the shared read-only input copies."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config
        self.jobs_dir = executor.jobs_dir

    def image(self) -> str:
        self.executor.ensure_image()
        return self.executor.image()

    def input_uri(self, folder: Path, name: str, digest: str) -> str:
        return folder.resolve().as_uri()

    def output_uri(self, job: str, name: str) -> str:
        return (self.jobs_dir.resolve() / job / "output" / name).as_uri()

    def run(self, request: dict, runtime=None) -> dict:
        """The job to its end (runtime as LOCAL_RUNTIME chooses unless given); its record."""
        from sagemake.data import summary
        from sagemake.executors.local.channels import copy_name, shared_copy, unchanged
        from sagemake.executors.local.guarded import SERIES, log_lines, process_identity, run_guarded, uri_path
        from sagemake.executors.local.runtimes import resource_config

        name = request["ProcessingJobName"]
        runtime, why = (runtime, "given") if runtime else self.executor.runtime_for(
            request["AppSpecification"]["ImageUri"])
        say(f"processing {name}: runtime {runtime.describe()}: {why}")
        folder = self.jobs_dir / name
        folder.mkdir(parents=True)
        (folder / REQUEST).write_text(json.dumps(request, indent=2) + "\n")
        record = new_record(request, f"arn:aws:sagemaker:local:000000000000:processing-job/{name}")
        record.update({"LocalRuntime": runtime.name, "LocalExecutor": process_identity(os.getpid()), "LocalLog": LOG})
        save(folder, record)
        tree, copies, code, stopped_by, reason = folder / "ml", {}, None, None, None
        stamps: list[str | None] = []  # when each line of the log came (copy_lines)
        try:
            sources = {i["InputName"]: uri_path(i["S3Input"]["S3Uri"]) for i in request["ProcessingInputs"]}
            digests = {n: found["digest"] for n, found in summary(self.config, sources).items()}
            record["LocalChannels"] = {n: copy_name(d) for n, d in digests.items()}
            copies = {n: shared_copy(self.jobs_dir, source, digests[n]) for n, source in sources.items()}
            outputs = {}
            for output in request["ProcessingOutputConfig"]["Outputs"]:
                outputs[output["OutputName"]] = uri_path(output["S3Output"]["S3Uri"])
                outputs[output["OutputName"]].mkdir(parents=True)
            config_dir = tree / layout.PROCESSING_CONFIG_DIR
            config_dir.mkdir(parents=True)
            (tree / layout.PROCESSING_JOB_CONFIG).write_text(json.dumps(record_config(request), indent=2))
            cluster = request["ProcessingResources"]["ClusterConfig"]
            (tree / layout.PROCESSING_RESOURCE_CONFIG).write_text(json.dumps(resource_config(
                {"ResourceConfig": {"InstanceType": cluster["InstanceType"], "InstanceCount": 1}})))
            command, env = runtime.processing_command(request, tree, copies, outputs)
            record["ProcessingStartTime"] = now()
            save(folder, record)
            say(f"processing {name}: InProgress")
            code, stopped_by = run_guarded(command, env, runtime.processing_guard_arguments(request), folder / LOG,
                                           request["StoppingCondition"]["MaxRuntimeInSeconds"],
                                           self.config.int("STOP_GRACE_SECONDS"), stamps)
        except KeyboardInterrupt:
            stopped_by = "Stopped"
        except (OSError, UserError) as err:
            reason = f"ClientError: {err}"
        for input_name, copy in copies.items():
            if not unchanged(copy):
                say(f"processing {name}: warning: the job wrote into its input {input_name}: the copy it read was "
                    "set aside and the next job gets a fresh one")
        lines = log_lines(folder / LOG)
        # A processing job declares no metrics: every `name=value` line it printed is one, with its series.
        jsonfile.write(folder / SERIES, metric_points(metric_definitions(printed_metrics(lines)), lines,
                                                      stamps if len(stamps) == len(lines) else None), indent=None)
        if lines:
            record["ExitMessage"] = "\n".join(lines[-5:])[-MESSAGE_LIMIT:]
        if stopped_by:
            status = "Stopped"
            record["ExitMessage"] = (f"MaxRuntimeInSeconds={request['StoppingCondition']['MaxRuntimeInSeconds']} "
                                     "reached" if stopped_by == "MaxRuntimeExceeded" else "stopped by Ctrl-C")
        elif code == 0 and reason is None:
            status = "Completed"
        else:
            status = "Failed"
            reason = reason or (runtime.explain_exit(code) if code is not None else None) or \
                f"AlgorithmError: the processing container exited with code {code}: {lines[-1] if lines else ''}"
            record["FailureReason"] = reason[:MESSAGE_LIMIT]
        stamp = now()
        record.update({"ProcessingJobStatus": status, "ProcessingEndTime": stamp, "LastModifiedTime": stamp})
        save(folder, record)
        say(f"processing {name}: {status}")  # a failure's reason is said once, by what ends the command
        if stopped_by == "Stopped":
            raise KeyboardInterrupt
        return record

    def names(self, limit: int | None = 10) -> list[str]:
        """This project's processing jobs in JOBS_DIR, newest first by when each was created."""
        return records.names(self.jobs_dir, RECORD, names_pattern(self.config["PROJECT_NAME"]), limit)

    def describe(self, name: str) -> dict | None:
        """The job's record (None: no such job); one whose executor is gone is settled first (records.py)."""
        return records.read(self.jobs_dir / name / RECORD)

    def metric_series(self, name: str) -> dict[str, list[dict]]:
        """Every `name=value` line the job printed, as its series (metrics.json, written as it ended)."""
        from sagemake.executors.local.guarded import SERIES

        saved = jsonfile.read(self.jobs_dir / name / SERIES, None)
        return saved if isinstance(saved, dict) else {}

    def download(self, request: dict, output: str, target: Path) -> None:
        from sagemake.executors.local.guarded import uri_path

        source = next(uri_path(o["S3Output"]["S3Uri"]) for o in request["ProcessingOutputConfig"]["Outputs"]
                      if o["OutputName"] == output)
        shutil.copytree(source, target, symlinks=False)
