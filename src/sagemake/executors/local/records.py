"""The records of local jobs of every kind, read from their files alone: no job kind is imported.

A record is a job folder's JSON file in its Describe* shape; its `<Kind>JobStatus` (TrainingJobStatus,
ProcessingJobStatus, HyperParameterTuningJobStatus, TransformJobStatus) says which kind it is and where it is, and
`LocalExecutor` (with `LocalGuards`, the training's guards) says which processes run it. One still InProgress
whose processes are all gone (kill -9, a crash, a closed terminal) is settled as Failed when it is read, naming
the executor that ended, so nothing lists it as running or waits on it.
"""

from __future__ import annotations

import re
from pathlib import Path

from sagemake import jsonfile
from sagemake.clock import now
from sagemake.executors.local.guarded import running

STATUS = re.compile(r"^(\w+)JobStatus$")


def kind(record: dict) -> str | None:
    """Training, Processing, HyperParameterTuning or Transform: the API's own word, from the status field."""
    return next((found[1] for found in map(STATUS.match, record) if found), None)


def read(path: Path) -> dict | None:
    """The record in path, settled (see the module); None when there is none, or it is not a job's record."""
    record = jsonfile.read(path, None)
    if not isinstance(record, dict) or kind(record) is None:
        return None
    return settle(path, record)


def settle(path: Path, record: dict) -> dict:
    """The record, ended Failed (and saved) when it is InProgress and every process that ran it is gone."""
    name = kind(record)
    owners = [record["LocalExecutor"], *record.get("LocalGuards", [])] if "LocalExecutor" in record else []
    if record[f"{name}JobStatus"] != "InProgress" or not owners or not all(running(o) is False for o in owners):
        return record
    stamp, stage, log = now(), record.get("SecondaryStatus"), record.get("LocalLog", "`make jobs`")
    during = f" during {stage}" if stage else ""
    record["FailureReason"] = (f"ClientError: the executor (pid {record['LocalExecutor']['Pid']}) ended{during} "
                               f"without ending the job, which was stopped with it: see {log}")
    if stage:
        record["SecondaryStatusTransitions"][-1]["EndTime"] = stamp
        record["SecondaryStatusTransitions"].append(
            {"Status": "Failed", "StartTime": stamp, "StatusMessage": record["FailureReason"]})
        record["SecondaryStatus"] = "Failed"
    record.update({f"{name}JobStatus": "Failed", f"{name}EndTime": stamp, "LastModifiedTime": stamp})
    jsonfile.write(path, record)
    return record


def names(jobs_dir: Path, file: str, pattern: re.Pattern | None = None, limit: int | None = None) -> list[str]:
    """The folders of JOBS_DIR holding a record named file (whose names match pattern, when given), newest
    first by when each job was created."""
    created = {}
    for path in jobs_dir.glob(f"*/{file}") if jobs_dir.is_dir() else ():
        if pattern is None or pattern.fullmatch(path.parent.name):
            record = jsonfile.read(path, None)
            if isinstance(record, dict) and kind(record) and record.get("CreationTime"):
                created[path.parent.name] = record["CreationTime"]
    return sorted(created, key=lambda name: (created[name], name), reverse=True)[:limit]


def every(jobs_dir: Path) -> list[tuple[Path, dict]]:
    """Every job's record under JOBS_DIR, settled: (its folder, the record)."""
    found = []
    for path in sorted(jobs_dir.glob("*/*.json")) if jobs_dir.is_dir() else ():
        record = read(path)
        if record is not None:
            found.append((path.parent, record))
    return found


def running_now(record: dict) -> bool:
    return record[f"{kind(record)}JobStatus"] == "InProgress"
