"""Preprocessing as a SageMaker processing job: raw data in, the training channels out, on this machine or on
SageMaker.

Usage: scripts/preprocess.py

One request in CreateProcessingJob's shape is built for both places (the
image, ContainerEntrypoint `python3 -m trainer.preprocess` with PREPROCESS_ARGS
as ContainerArguments, the input `raw` at /opt/ml/processing/input/raw, one
output per channel at /opt/ml/processing/output/<channel>); the place gives the
URIs, and nothing here asks which place it is.

ENV=local: the local executor's machinery runs it: the image in the engine
with SageMaker's processing mounts (the input read-only, the outputs, and
/opt/ml/config/processingjobconfig.json and resourceconfig.json), or, for
sagemake's own image, the job's Python as a process with the same paths under
JOBS_DIR/<job>/ml/; under the guard, MaxRuntime enforced. The input is read
from the shared read-only copy of RAW_DIR (channels.py); the record,
processing.json, is in DescribeProcessingJob's shape.

Any other ENV: RAW_DIR is uploaded to
s3://S3_BUCKET/S3_PREFIX/processing/input/raw/<digest>/ (once per content: a
manifest beside it makes an unchanged upload a few requests), the job created
and followed with its CloudWatch log (/aws/sagemaker/ProcessingJobs), and the
outputs, written to .../processing/output/<job>/<channel>/, downloaded. Ctrl-C
stops the job.

Either way each output lands whole in DATA_DIR/<channel>/, and
DATA_DIR/.preprocessed.json records the cache key (the raw data's digest, the
preprocessing code's digest and its arguments) with each channel's digest: an
unchanged preprocessing is not run again.

Each place also lists this project's processing jobs (names, newest first, and
describe) for `make jobs`; a local record still InProgress whose executor is
gone (kill -9, a crash) is settled as Failed when read, and `make clean-jobs`
removes local processing job folders as it removes training ones.

Exit status: 0 Completed (or nothing to do), 1 the job failed, 2 bad input, 3 AWS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import Config, resolve, s3_uri
from sagemake.contract import layout
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import job_name, words

INPUT = "raw"  # the input's name: /opt/ml/processing/input/raw
CHANNELS = ("train", "validation")  # the outputs: what src/trainer/preprocess.py writes
STEP = "src/trainer/preprocess.py"
RAW_STEP = "src/trainer/raw.py"
ENTRYPOINT = ["python3", "-m", "trainer.preprocess"]
NAME_PART = "proc"  # <project>-proc-<time><random>: never taken for a training job's name
STAMP = ".preprocessed.json"  # in DATA_DIR
RECORD = "processing.json"
REQUEST = "processing-request.json"
LOG = "processing.log"
TERMINAL = ("Completed", "Failed", "Stopped")
MESSAGE_LIMIT = 1024  # ExitMessage and FailureReason, as SageMaker keeps them
RUN_RAW = "import sys, pathlib; from trainer.raw import main; main(pathlib.Path(sys.argv[1]))"


class ProcessingFailed(JobFailed):
    """The processing job ran and did not complete."""


# --- the request -----------------------------------------------------------------------------------------------


def overlaps(one: str, other: str) -> bool:
    """Whether two folders (URIs or paths) are the same or one holds the other."""
    one, other = one.rstrip("/") + "/", other.rstrip("/") + "/"
    return one.startswith(other) or other.startswith(one)


def check_collisions(inputs: dict[str, str], outputs: dict[str, str]) -> None:
    """An output written where an input is read would change the input under the job: refused."""
    for output, target in outputs.items():
        for name, source in inputs.items():
            if overlaps(source, target):
                raise UserError(f"processing output {output} ({target}) collides with input {name} ({source}): "
                                "write the outputs elsewhere")


def processing_request(config: Config, name: str, image: str, entrypoint: list[str], arguments: list[str],
                       inputs: dict[str, str], outputs: dict[str, str]) -> dict:
    """The CreateProcessingJob request: the place (local or SageMaker) gives the image and every URI."""
    check_collisions(inputs, outputs)
    base = Path(layout.DEFAULT_BASE_DIR)
    request = {
        "ProcessingJobName": name,
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1,
            "InstanceType": config["PROCESSING_INSTANCE_TYPE"] or config["INSTANCE_TYPE"],
            "VolumeSizeInGB": config.int("VOLUME_SIZE_GB")}},
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": entrypoint,
                             **({"ContainerArguments": arguments} if arguments else {})},  # SageMaker: none, or 1+
        "ProcessingInputs": [
            {"InputName": input_name, "AppManaged": False,
             "S3Input": {"S3Uri": uri, "LocalPath": str(layout.processing_input(base, input_name)),
                         "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated",
                         "S3CompressionType": "None"}}
            for input_name, uri in inputs.items()],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": output, "AppManaged": False,
             "S3Output": {"S3Uri": uri, "LocalPath": str(layout.processing_output(base, output)),
                          "S3UploadMode": "EndOfJob"}}
            for output, uri in outputs.items()]},
        "StoppingCondition": {"MaxRuntimeInSeconds": config.int("MAX_RUNTIME_SECONDS")},
        "Environment": dict(sorted(_pairs(config["JOB_ENV"]).items())),
        "Tags": [{"Key": "sagemake:project", "Value": config["PROJECT_NAME"]},
                 {"Key": "sagemake:env", "Value": config.env}],
    }
    if config["SAGEMAKER_ROLE_ARN"]:
        request["RoleArn"] = config["SAGEMAKER_ROLE_ARN"]
    return request


def _pairs(text: str) -> dict[str, str]:
    from sagemake.jobs.training import parse_pairs

    return parse_pairs(text, "JOB_ENV")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def save(folder: Path, record: dict) -> None:
    jsonfile.write(folder / RECORD, record)


def names_pattern(project: str) -> re.Pattern:
    """This project's processing job names, as job_name(PROJECT_NAME, NAME_PART) makes them:
    <project>-proc-<yymmdd-HHMMSS>-<milliseconds><5 random>."""
    return re.compile(rf"{re.escape(project)}-{NAME_PART}-\d{{6}}-\d{{6}}-\d{{3}}[0-9a-z]{{5}}")


def duration(record: dict) -> int:
    """Seconds a DescribeProcessingJob record ran: from ProcessingStartTime (CreationTime when it never started) to
    ProcessingEndTime, to now while it runs, or to its last change when it ended without an end time."""
    start = record.get("ProcessingStartTime") or record["CreationTime"]
    if record.get("ProcessingEndTime"):
        end = datetime.fromisoformat(record["ProcessingEndTime"]).timestamp()
    elif record["ProcessingJobStatus"] in TERMINAL:
        end = datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
    else:
        end = time.time()
    return max(0, round(end - datetime.fromisoformat(start).timestamp()))


def new_record(request: dict, arn: str) -> dict:
    """DescribeProcessingJob's answer as the job starts."""
    record = {key: value for key, value in request.items() if key != "Tags"}
    stamp = now()
    record.update({"ProcessingJobArn": arn, "ProcessingJobStatus": "InProgress", "CreationTime": stamp,
                   "LastModifiedTime": stamp})
    return record


# --- where processing runs -------------------------------------------------------------------------------------


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
        from sagemake.executors.channels import copy_name, shared_copy, unchanged
        from sagemake.executors.local import process_identity, run_guarded, uri_path
        from sagemake.executors.runtimes import resource_config

        name = request["ProcessingJobName"]
        runtime, why = (runtime, "given") if runtime else self.executor.runtime_for(
            request["AppSpecification"]["ImageUri"])
        say(f"processing {name}: runtime {runtime.describe()}: {why}")
        folder = self.jobs_dir / name
        folder.mkdir(parents=True)
        (folder / REQUEST).write_text(json.dumps(request, indent=2) + "\n")
        record = new_record(request, f"arn:aws:sagemaker:local:000000000000:processing-job/{name}")
        record.update({"LocalRuntime": runtime.name, "LocalExecutor": process_identity(os.getpid())})
        save(folder, record)
        tree, copies, code, stopped_by, reason = folder / "ml", {}, None, None, None
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
                                           self.config.int("STOP_GRACE_SECONDS"))
        except KeyboardInterrupt:
            stopped_by = "Stopped"
        except (OSError, UserError) as err:
            reason = f"ClientError: {err}"
        for input_name, copy in copies.items():
            if not unchanged(copy):
                say(f"processing {name}: warning: the job wrote into its input {input_name}: the copy it read was "
                    "set aside and the next job gets a fresh one")
        log = folder / LOG
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
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
        say(f"processing {name}: {status}{': ' + record['FailureReason'] if status == 'Failed' else ''}")
        if stopped_by == "Stopped":
            raise KeyboardInterrupt
        return record

    def names(self, limit: int | None = 10) -> list[str]:
        """This project's processing jobs in JOBS_DIR, newest first by when each was created."""
        ours, created = names_pattern(self.config["PROJECT_NAME"]), {}
        for path in self.jobs_dir.glob(f"*/{RECORD}") if self.jobs_dir.is_dir() else ():
            if ours.fullmatch(path.parent.name):
                try:
                    created[path.parent.name] = json.loads(path.read_text())["CreationTime"]
                except (OSError, ValueError, KeyError, TypeError):  # not a processing job's record
                    pass
        return sorted(created, key=lambda name: (created[name], name), reverse=True)[:limit]

    def describe(self, name: str) -> dict | None:
        """The job's record (None: no such job). One still InProgress whose executor is gone (kill -9, a crash) is
        settled now as Failed, naming the executor's pid (its guard stopped the step with it), so nothing shows
        or waits on a job that no one runs."""
        from sagemake.executors.local import running

        folder = self.jobs_dir / name
        try:
            record = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            return None
        owner = record.get("LocalExecutor")
        if record.get("ProcessingJobStatus") == "InProgress" and owner and running(owner) is False:
            stamp = now()
            record["FailureReason"] = (f"ClientError: the executor (pid {owner['Pid']}) ended without ending the "
                                       f"job; its step was stopped with it: see {LOG}")
            record.update({"ProcessingJobStatus": "Failed", "ProcessingEndTime": stamp, "LastModifiedTime": stamp})
            save(folder, record)
        return record

    def download(self, request: dict, output: str, target: Path) -> None:
        from sagemake.executors.local import uri_path

        source = next(uri_path(o["S3Output"]["S3Uri"]) for o in request["ProcessingOutputConfig"]["Outputs"]
                      if o["OutputName"] == output)
        shutil.copytree(source, target, symlinks=False)


class SageMakerProcessing:
    """A processing job on SageMaker: each input uploaded once per content, the job created and followed with its
    CloudWatch log, the outputs downloaded. Ctrl-C stops the job: only the command that started it collects its
    outputs, so a job left running would be paid for and thrown away."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config
        self.uploads: dict[str, Path] = {}  # S3 URI -> the local folder to put there

    def image(self) -> str:
        self.executor.ensure_image()
        return self.executor.image()

    def input_uri(self, folder: Path, name: str, digest: str) -> str:
        uri = s3_uri(self.config, "processing", "input", name, digest) + "/"
        self.uploads[uri] = folder
        return uri

    def output_uri(self, job: str, name: str) -> str:
        return s3_uri(self.config, "processing", "output", job, name) + "/"

    def run(self, request: dict) -> dict:
        """Check the bucket and image, upload the inputs, create the job, follow it to its end; its record."""
        from sagemake.aws.api import call, check_bucket, console_url
        from sagemake.aws.sync import sync_channel
        from sagemake.data import CACHE, EtagCache

        executor, name = self.executor, request["ProcessingJobName"]
        check_bucket(self.config, executor.aws)
        executor.check_image(request["AppSpecification"]["ImageUri"])
        s3 = executor.aws.client("s3")
        cache = EtagCache(self.config.root / CACHE)
        for entry in request["ProcessingInputs"]:
            uri = entry["S3Input"]["S3Uri"]
            try:  # content-named: the manifest beside the prefix makes an unchanged input a few requests
                sent, kept, _, size = sync_channel(s3, self.uploads[uri], uri, cache, uri.rstrip("/") + ".json")
            finally:
                cache.save()
            say(f"processing {name}: input {entry['InputName']}: {sent} uploaded ({size / 1e6:.1f} MB), "
                f"{kept} there already -> {uri}")
        self._create(request)
        say(f"processing {name}: submitted to SageMaker in {executor.region}")
        say(f"  console: {console_url(executor.region, name, 'processing-jobs')}")
        try:
            return self.follow(name)
        except KeyboardInterrupt:
            try:
                call(executor.sagemaker.stop_processing_job, ProcessingJobName=name)
                say(f"processing {name}: stop requested (Ctrl-C): its outputs would not be collected")
            except UserError as err:
                say(f"processing {name}: could not ask it to stop ({err}): make sure it stops in the console")
            raise

    def _create(self, request: dict) -> None:
        """CreateProcessingJob. A retry that hears the name is taken met the job its lost first attempt created:
        names end in random characters, so no other job has this one."""
        from sagemake.aws.api import ERRORS, error_code, failure, retried

        try:
            self.executor.sagemaker.create_processing_job(**request)
        except ERRORS as err:
            if not retried(err) or error_code(err) not in ("ResourceInUse", "ValidationException") or \
                    self.describe(request["ProcessingJobName"]) is None:
                raise failure(err) from None

    def names(self, limit: int | None = 10) -> list[str]:
        """This project's processing jobs, newest first (ListProcessingJobs by NameContains, then its names only)."""
        from sagemake.aws.api import call

        project = self.config["PROJECT_NAME"]
        answer = call(self.executor.sagemaker.list_processing_jobs, NameContains=f"{project}-{NAME_PART}-",
                      SortBy="CreationTime", SortOrder="Descending", MaxResults=100)
        summaries = sorted(answer["ProcessingJobSummaries"], key=lambda s: s["CreationTime"], reverse=True)
        ours = names_pattern(project)
        return [s["ProcessingJobName"] for s in summaries if ours.fullmatch(s["ProcessingJobName"])][:limit]

    def describe(self, name: str) -> dict | None:
        """DescribeProcessingJob's answer (None: SageMaker knows no such job)."""
        from sagemake.aws.api import ERRORS, error_code, failure, plain

        try:
            return plain(self.executor.sagemaker.describe_processing_job(ProcessingJobName=name))
        except ERRORS as err:
            if error_code(err) == "ValidationException":
                return None
            raise failure(err) from None

    def follow(self, name: str) -> dict:
        """Status changes with the time taken, and the log of every instance, to the end."""
        from sagemake.aws.api import PROCESSING_LOG_GROUP
        from sagemake.executors.sagemaker import LogReader

        seen = None
        reader = LogReader(self.executor.logs, name, PROCESSING_LOG_GROUP)

        def ask():
            record = self.describe(name)
            if record is None:
                raise UserError(f"SageMaker does not know processing job {name}")
            return record, reader.new_lines()

        for (record, lines), elapsed in self.executor.watch(f"processing {name}", ask, "see it in the console"):
            status = record["ProcessingJobStatus"]
            if status != seen:
                say(f"processing {name}: [{elapsed}] {status}")
                seen = status
            for line in lines:
                print(line, flush=True)
            if status in TERMINAL:
                return record

    def download(self, request: dict, output: str, target: Path) -> None:
        """Every object under the output's S3 URI into target, by its key below it; a key that would land outside
        target is refused."""
        from sagemake.aws.api import ERRORS, call, failure

        uri = next(o["S3Output"]["S3Uri"] for o in request["ProcessingOutputConfig"]["Outputs"]
                   if o["OutputName"] == output)
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        prefix = prefix.rstrip("/") + "/"
        s3, root = self.executor.aws.client("s3"), target.resolve()
        target.mkdir(parents=True)
        try:
            pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
        except ERRORS as err:
            raise failure(err) from None
        for item in (item for page in pages for item in page.get("Contents", [])):
            if item["Key"].endswith("/"):  # a folder marker, as the console makes them: nothing to write
                continue
            path = (root / item["Key"][len(prefix):]).resolve()
            if not path.is_relative_to(root) or path == root:
                raise ProcessingFailed(f"output {output}: the object s3://{bucket}/{item['Key']} would land outside "
                                       f"{target}: not taken")
            path.parent.mkdir(parents=True, exist_ok=True)
            call(s3.download_file, Bucket=bucket, Key=item["Key"], Filename=str(path))


def record_config(request: dict) -> dict:
    """processingjobconfig.json: the job's own description, as SageMaker writes it into the container."""
    return {key: value for key, value in request.items() if key != "Tags"}


def processing_for(executor: Executor):
    """The place of the executor: the one choice, made from the executor that ENV chose."""
    return {"local": LocalProcessing, "sagemaker": SageMakerProcessing}[executor.kind](executor)


# --- make preprocess -------------------------------------------------------------------------------------------


def code_digest(root: Path) -> str:
    """What the step runs: the step and the container side it imports; their content is in the cache key."""
    from sagemake import sourcedir

    return sourcedir.digest([(STEP, root / STEP), *sourcedir.contract(root)])


def cache_key(raw_digest: str, code: str, arguments: list[str], image_runs_it: str) -> str:
    """What names the outputs: the same raw data, code and arguments give the same channels."""
    text = json.dumps({"raw": raw_digest, "code": code, "arguments": arguments, "entrypoint": image_runs_it})
    return hashlib.sha256(text.encode()).hexdigest()


def raw_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def ensure_raw(config: Config) -> Path:
    """RAW_DIR with files; the example's raw data step (src/trainer/raw.py) writes it when missing or empty."""
    from sagemake.job_python import job_python

    raw = config.path("RAW_DIR")
    if raw_files(raw):
        return raw
    if not (config.root / RAW_STEP).is_file():
        raise UserError(f"RAW_DIR={config['RAW_DIR']} holds no files: put the raw data there")
    say(f"preprocess: RAW_DIR={config['RAW_DIR']} is empty: running the raw data step {RAW_STEP}")
    env = {**os.environ, "PYTHONPATH": str(config.root / "src"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([str(job_python(config)), "-c", RUN_RAW, str(raw)], env=env, cwd=config.root, check=False)
    if done.returncode != 0 or not raw_files(raw):
        raise UserError(f"the raw data step {RAW_STEP} failed (exit {done.returncode}, see above): fix it")
    return raw


def check_step(config: Config) -> None:
    """Processing runs src/trainer/preprocess.py in sagemake's own image: another image cannot run it."""
    if not config.sagemake_image:
        which = f"TRAINING_IMAGE={config['TRAINING_IMAGE']}" if config["TRAINING_IMAGE"] else \
            f"DOCKERFILE={config['DOCKERFILE']}"
        raise UserError(f"{which} cannot run the preprocessing step ({STEP} in sagemake's image): "
                        "preprocess with sagemake's image (unset it for `make preprocess`)")
    if not (config.root / STEP).is_file():
        raise UserError(f"no preprocessing step: write {STEP} (see the example's), or put the channels in "
                        f"{config['DATA_DIR']}/ yourself")


def read_stamp(data: Path) -> dict:
    try:
        return json.loads((data / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def channel_digests(config: Config, data: Path) -> dict[str, str | None]:
    """Each output channel's digest in DATA_DIR (None: absent or empty)."""
    from sagemake.data import summary

    present = {c: data / c for c in CHANNELS if raw_files(data / c)}
    found = summary(config, present) if present else {}
    return {c: found[c]["digest"] if c in found else None for c in CHANNELS}


def preprocess(config: Config, executor: Executor) -> dict:
    """Raw data -> the channels, unless the same preprocessing made them already; the record, or the stamp."""
    from sagemake.data import summary

    check_step(config)
    raw, data = config.path("RAW_DIR"), config.path("DATA_DIR")
    for channel in CHANNELS:  # before anything runs: the outputs land in DATA_DIR/<channel>/
        if overlaps(str(raw.resolve()), str((data / channel).resolve())):
            raise UserError(f"processing output {channel} ({config['DATA_DIR']}/{channel}) collides with its input "
                            f"RAW_DIR={config['RAW_DIR']}: keep the raw data out of DATA_DIR's channels")
    raw = ensure_raw(config)
    raw_digest = summary(config, {INPUT: raw})[INPUT]["digest"]
    arguments = words(config["PREPROCESS_ARGS"], "PREPROCESS_ARGS")
    key = cache_key(raw_digest, code_digest(config.root), arguments, " ".join(ENTRYPOINT))
    stamp, current = read_stamp(data), channel_digests(config, data)
    if stamp.get("key") == key and stamp.get("channels") == current:
        say(f"preprocess: unchanged (raw data, {STEP} and PREPROCESS_ARGS as for job {stamp.get('job')}): "
            f"{config['DATA_DIR']}/{', '.join(CHANNELS)} are its outputs already; not run again")
        return stamp
    theirs = [f"{config['DATA_DIR']}/{c}/" for c, d in current.items()
              if d is not None and stamp.get("channels", {}).get(c) != d]
    if theirs:
        raise UserError(f"{', '.join(theirs)} hold files that preprocessing "
                        f"did not write (the data step's, or yours), which it would replace: move them away, or set "
                        "DATA_DIR to another folder")
    place = processing_for(executor)
    name = job_name(config["PROJECT_NAME"], NAME_PART)
    request = processing_request(config, name, place.image(), ENTRYPOINT, arguments,
                                 {INPUT: place.input_uri(raw, INPUT, raw_digest)},
                                 {c: place.output_uri(name, c) for c in CHANNELS})
    record = place.run(request)
    if record["ProcessingJobStatus"] != "Completed":
        reason = record.get("FailureReason") or "no reason given"
        last = (record.get("ExitMessage") or "").strip().splitlines()[-1:]
        if last and last[0] not in reason:  # SageMaker's reason can be a pointer to the log: its last line says more
            reason += f" (last line: {last[0]})"
        raise ProcessingFailed(f"processing {name} {record['ProcessingJobStatus']}: {reason}")
    install(config, place, request, data)
    written = {"key": key, "job": name, "raw": raw_digest, "arguments": arguments,
               "channels": channel_digests(config, data)}
    jsonfile.write(data / STAMP, written)
    folders = ", ".join(f"{config['DATA_DIR']}/{c}/" for c in CHANNELS)
    say(f"preprocess {name}: Completed: {folders} written; "
        "`make train` trains on them")
    return record


def install(config: Config, place, request: dict, data: Path) -> None:
    """Each output whole into DATA_DIR/<channel>/: set aside beside it first, then swapped in."""
    from sagemake.executors.channels import remove

    data.mkdir(parents=True, exist_ok=True)
    for channel in CHANNELS:
        partial = data / f".{channel}.{os.getpid()}"
        remove(partial)
        place.download(request, channel, partial)
        if not raw_files(partial):
            remove(partial)
            raise ProcessingFailed(f"processing {request['ProcessingJobName']} wrote nothing to its output "
                                   f"{channel}: {STEP} must write /opt/ml/processing/output/{channel}/")
        remove(data / channel)
        partial.rename(data / channel)


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: preprocess.py (settings: RAW_DIR, DATA_DIR, PREPROCESS_ARGS)")
    config = resolve()
    started = time.monotonic()
    preprocess(config, for_config(config))
    say(f"preprocess: done in {time.monotonic() - started:.1f} s")
    return Exit.OK


if __name__ == "__main__":
    run(main, "processing")
