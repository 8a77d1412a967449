"""Summary: raw data (RAW_DIR) -> the channels in DATA_DIR, as a processing job (skipped when unchanged)

Usage: make preprocess [ENV=...]   (python -m sagemake preprocess)

One CreateProcessingJob request for both places (the image, ContainerEntrypoint
`python3 -m trainer.preprocess` with PREPROCESS_ARGS as ContainerArguments, the
input `raw` at /opt/ml/processing/input/raw, one output per channel at
/opt/ml/processing/output/<channel>), run where ENV says (executor.processing()).
Either way each output lands whole in DATA_DIR/<channel>/, and
DATA_DIR/.preprocessed.json records the cache key (the raw data's digest, the
preprocessing code's digest and its arguments) with each channel's digest: an
unchanged preprocessing is not run again.
Exit status: 0 Completed (or nothing to do), 1 the job failed, 2 bad input, 3 AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import Exit, UserError, held_signals, say
from sagemake.config import Config, resolve
from sagemake.data import PENDING
from sagemake.executors import Executor, for_config
from sagemake.jobs import reason_line
from sagemake.jobs.processing import (
    CHANNELS,
    ENTRYPOINT,
    INPUT,
    NAME_PART,
    RAW_STEP,
    STEP,
    ProcessingFailed,
    cache_key,
    code_digest,
    overlaps,
    processing_request,
)
from sagemake.jobs.training import job_name, words
from sagemake.tracking import Tracker

STAMP = ".preprocessed.json"  # in DATA_DIR
STAGING = ".preprocess"  # in DATA_DIR: a run's outputs, staged whole before they are swapped in


RUN_RAW = "import sys, pathlib; from trainer.raw import main; main(pathlib.Path(sys.argv[1]))"


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
    finished = complete_install(data)
    if finished:
        say(f"preprocess: completed the install of job {finished['job']}'s outputs, which was cut off")
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
    place = executor.processing()
    name = job_name(config["PROJECT_NAME"], NAME_PART)
    request = processing_request(config, name, place.image(), ENTRYPOINT, arguments,
                                 {INPUT: place.input_uri(raw, INPUT, raw_digest)},
                                 {c: place.output_uri(name, c) for c in CHANNELS})
    tracker = Tracker(config)  # says a run the last writer could not write
    record = place.run(request)
    if record["ProcessingJobStatus"] != "Completed":
        tracker.processing(executor, record, {INPUT: raw_digest})
        reason = reason_line(record.get("FailureReason") or "no reason given")
        last = (record.get("ExitMessage") or "").strip().splitlines()[-1:]
        if last and last[0] not in reason:  # SageMaker's reason can be a pointer to the log: its last line says more
            reason += f" (last line: {last[0]})"
        raise ProcessingFailed(f"processing {name} {record['ProcessingJobStatus']}: {reason}")
    install(config, place, request, data, {"key": key, "job": name, "raw": raw_digest, "arguments": arguments})
    tracker.processing(executor, record, {INPUT: raw_digest, **channel_digests(config, data)})
    folders = ", ".join(f"{config['DATA_DIR']}/{c}/" for c in CHANNELS)
    say(f"preprocess {name}: Completed: {folders} written; "
        f"`make train{executor.env_flag()}` trains on them")
    return record


def install(config: Config, place, request: dict, data: Path, stamp: dict) -> None:
    """Installs are whole or absent: every output is staged whole under DATA_DIR/.preprocess/ first, then a pending
    stamp names what goes in (with each channel's digest), then the swap, the stamp last (complete_install). Cut
    off before the pending stamp, DATA_DIR is as it was; after it, the next run completes the swap."""
    from sagemake.executors.local.channels import remove

    staging = data / STAGING
    remove(staging)
    staging.mkdir(parents=True)
    try:
        for channel in CHANNELS:
            place.download(request, channel, staging / channel)
            if not raw_files(staging / channel):
                raise ProcessingFailed(f"processing {request['ProcessingJobName']} wrote nothing to its output "
                                       f"{channel}: {STEP} must write /opt/ml/processing/output/{channel}/")
    except BaseException:  # a failure, Ctrl-C, SIGTERM: DATA_DIR as it was, nothing staged left behind
        remove(staging)
        raise
    jsonfile.write(data / PENDING, {**stamp, "channels": channel_digests(config, staging)})
    complete_install(data)


def complete_install(data: Path) -> dict | None:
    """The swap of an install under way (its pending stamp is there): each staged channel replaces DATA_DIR's (the
    old one moved aside into the staging), then the stamp is written and the staging removed, old channels with it.
    Any step may be cut off and run again. Returns the stamp written, or None when no install was under way."""
    from sagemake.executors.local.channels import remove

    pending = jsonfile.read(data / PENDING, None)
    if not isinstance(pending, dict):
        return None
    staging = data / STAGING
    with held_signals():  # only a crash (kill -9, power) leaves a swap half done; renames only, never a long rm
        for channel in pending["channels"]:
            if (staging / channel).is_dir():
                if os.path.lexists(data / channel):
                    (data / channel).rename(staging / f".old-{channel}")
                (staging / channel).rename(data / channel)
    jsonfile.write(data / STAMP, pending)
    (data / PENDING).unlink()
    remove(staging)
    return pending


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make preprocess (settings: RAW_DIR, DATA_DIR, PREPROCESS_ARGS)")
    config = resolve()
    started = time.monotonic()
    preprocess(config, for_config(config))
    say(f"preprocess: done in {time.monotonic() - started:.1f} s")
    return Exit.OK

