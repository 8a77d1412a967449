"""What a command says, on a project that is not the example: a failed job's reason once, suggestions only of
commands that work, and the ledger read from each job's own record, never from today's settings.

The project here brings its own training program in place of docker/train (run by the process runtime, as the
image would run it), written as AWS's bring-your-own examples write one: it prints `val_loss=<value>`, and on an
error writes the message and its traceback to /opt/ml/output/failure and prints the same to its log.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import copy_repo, sagemake, tool_venv

OWN_TRAIN = '''
import os
import sys
import traceback
from pathlib import Path

base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def fit():
    print("reading", len(list((base / "input/data/training").iterdir())), "file(s)", flush=True)
    print("val_loss=0.250000", flush=True)
    if os.environ.get("MODE") == "fail":
        raise ValueError("the labels hold NaN")
    (base / "model/weights.txt").write_text("1 2 3")


try:
    fit()
except Exception as error:  # the reason and its traceback: the job's FailureReason, and its log
    report = f"Exception during training: {error}\\n{traceback.format_exc()}"
    (base / "output/failure").write_text(report)
    print(report, file=sys.stderr, flush=True)
    sys.exit(255)
'''


@pytest.fixture
def own(tmp_path):
    """A project with its own training program and data (channel `training`), and how to run sagemake in it."""
    repo = copy_repo(tmp_path / "their project")
    (repo / "docker/train").write_text(OWN_TRAIN)
    (repo / "their data/training").mkdir(parents=True)
    (repo / "their data/training/rows.csv").write_text("1,2\n3,4\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TUNE_"))},
           "DATA_DIR": "their data", "LOCAL_RUNTIME": "process", "PROJECT_NAME": "their-model"}

    def run(*args: str, **more: str) -> subprocess.CompletedProcess:
        return subprocess.run([*sagemake(repo), *args], capture_output=True, text=True, timeout=600,
                              env={**env, **more})

    return repo, run


def test_a_failed_job_says_its_reason_once(own):
    """The traceback was printed three times: in the job's log, in the Failed status line (the record's reason)
    and in the final error line. It is now in the log alone; the status line says the job failed, and the final line
    gives the reason's first line and where the log is."""
    repo, run = own
    done = run("train", METRICS="val_loss:min", JOB_ENV="MODE=fail")
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert said.count('raise ValueError("the labels hold NaN")') == 1, said  # the traceback, once: the log's
    assert said.count("Traceback (most recent call last):") == 1, said
    (job,) = [p.parent.name for p in (repo / "jobs").glob("*/job.json")]
    assert f"==> job {job}: Failed / Failed: Training job failed" in done.stderr.splitlines()
    assert done.stderr.splitlines()[-1] == (
        f"sagemake: job {job} Failed: AlgorithmError: Exception during training: the labels hold NaN "
        f"[{len(reason_lines(repo, job))} lines in all] (log: `make logs JOB={job}`)")
    ours = [line for line in done.stderr.splitlines() if line.startswith(("==>", "sagemake:"))]
    assert sum("the labels hold NaN" in line for line in ours) == 1, ours  # sagemake says the reason once


def reason_lines(repo: Path, job: str) -> list[str]:
    """The non-blank lines of a local job's FailureReason."""
    reason = json.loads((repo / "jobs" / job / "job.json").read_text())["FailureReason"]
    return [line for line in reason.splitlines() if line.strip()]


def test_a_reason_of_several_lines_is_told_by_its_first_or_its_error():
    from sagemake.jobs import reason_line

    assert reason_line("AlgorithmError: bad data in row 7") == "AlgorithmError: bad data in row 7"
    toolkit = 'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "ValueError: x"\nCommand "train"'
    assert reason_line(toolkit) == "AlgorithmError: ExecuteUserScriptError: ExitCode 1 [4 lines in all]"
    bare = 'AlgorithmError: Traceback (most recent call last):\n  File "t.py", line 1\nKeyError: \'y\''
    assert reason_line(bare) == "AlgorithmError: KeyError: 'y' [3 lines in all]"


def test_the_ledger_shows_the_metrics_each_job_recorded_not_todays_settings(own):
    """A project whose jobs declared val_loss (METRICS given to the command, not in .env): `make jobs` without it
    showed the example trainer's validation:roc_auc column, empty. The columns come from the jobs' own records:
    a job that declared other metrics shows its own, in a column of its own."""
    repo, run = own
    assert run("train", METRICS="val_loss:min").returncode == 0
    listed = run("jobs")
    assert listed.returncode == 0, listed.stderr
    header, row, *_ = listed.stdout.splitlines()
    assert header.split()[-1] == "val_loss" and "validation:roc_auc" not in listed.stdout
    assert row.split()[-1] == "0.2500"
    assert run("train", METRICS="reading:max val_loss:min").returncode == 0  # a later job, another main metric
    listed = run("jobs")
    header, newer, older, _ = listed.stdout.splitlines()
    assert header.split()[-2:] == ["reading", "val_loss"]
    assert newer.split()[-2:] == ["-", "0.2500"]  # `reading 1 file(s)` is no name=value line: declared, not printed
    assert older.split()[-2:] == ["-", "0.2500"]
    chosen = run("jobs", PRIMARY_METRIC="val_loss")  # PRIMARY_METRIC picks among what each job declared
    assert [line.split()[-1] for line in chosen.stdout.splitlines()[1:3]] == ["0.2500", "0.2500"]


def suggested(said: str) -> list[str]:
    """The make commands a message suggests (each in backticks)."""
    return [command for command in re.findall(r"`([^`]+)`", said) if command.startswith("make ")]


def make(repo: Path, command: str, **env: str) -> subprocess.CompletedProcess:
    everything = {**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process", **env}
    return subprocess.run(["make", "-s", *shlex.split(command)[1:]], cwd=repo, env=everything, capture_output=True,
                          text=True, timeout=300)


def test_a_suggested_command_is_one_that_works(trained_checkout, tmp_path):
    """`make serve JOB=nope` suggested `make fetch JOB=nope`, which fails too. A message names a command only when
    it would work: a fetch only of a job that exists and Completed; else why not, the nearest job's name, or how to
    list them. Each command suggested here is run, and works."""
    repo, job = trained_checkout
    (tmp_path / "rows.csv").write_text("1,2\n")

    def says(command: str, **env: str) -> str:
        """The one line of a command that fails, after each command it suggests was run and worked; MODELS_DIR is
        a new empty folder each time (the checkout's own models/ stays as it is)."""
        models = tmp_path / f"models {len(list(tmp_path.iterdir()))}"
        env = {"MODELS_DIR": str(models), **env}
        done = make(repo, command, **env)
        assert done.returncode != 0, (command, done.stdout)
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("sagemake:")]
        for suggestion in suggested(line):
            if suggestion.split()[1] in ("train", "tune"):  # they start a job: their own tests show them working
                continue
            tried = make(repo, suggestion, **env)
            assert tried.returncode == 0, (line, suggestion, tried.stderr)
        return line.replace(str(models), "<models>")

    assert says("make serve JOB=nope") == ("sagemake: no fetched model of job nope in <models>/, and no local job "
                                           "named 'nope' in jobs/: `make jobs` lists them")
    assert says(f"make serve JOB={job[:-1]}").endswith(f"did you mean {job}? (`make jobs` lists them)")
    assert f"`make fetch JOB={job}`" in says(f"make serve JOB={job}")  # and it fetched it
    assert "`make fetch` (the latest job, " in says(f"make predict FILE={tmp_path}/rows.csv")
    nothing = says("make serve", JOBS_DIR=str(tmp_path / "no jobs"))
    assert "no fetched model in <models>/, and no jobs of sagemake-example yet" in nothing
    assert suggested(nothing) == ["make train"]
    runs = says("make tune-jobs TUNING=nope")
    assert runs.endswith("there is none yet: `make tune` starts one") and "make tune-jobs" not in runs
