"""`make compare` on a project that is not the example (the regression trainer in src/trainer/): two real jobs side
by side, what differs first; one job or an unknown one is one line with the fix."""

import json
import os
import subprocess

import pytest
from conftest import CHECKOUT, copy_repo, tool_venv


def make(repo, *args):
    return subprocess.run(["make", "-s", *args], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process"})


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("compare") / "their project",
                     trainer=CHECKOUT / "examples/regression/trainer")
    for args in (["HP=alpha=0.5"], ["HP=alpha=2.0 max_iter=500", "INSTANCE_TYPE=ml.c5.xlarge"]):
        done = make(repo, "train", *args)
        assert done.returncode == 0, done.stderr
    first, second = sorted(p.name for p in (repo / "jobs").iterdir() if (p / "job.json").is_file())
    return repo, first, second


def test_compare_shows_what_differs_first_then_what_is_the_same(two_jobs):
    repo, first, second = two_jobs
    done = make(repo, "compare", f"JOBS={first} {second}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [first, second] and lines[1].strip() == "DIFFERENT"
    split = lines.index("SAME")
    one, two = lines[0].index(first), lines[0].index(second)  # the columns, as the header places them

    def rows(part):
        return {line[:one].strip(): [line[one:two].strip(), line[two:].strip()] for line in part}

    differ, same = rows(lines[2:split]), rows(lines[split + 1:])
    assert differ["hp alpha"] == ["0.5", "2.0"] and differ["hp max_iter"] == ["1000", "500"]
    assert differ["setting instance type"] == ["ml.m5.large", "ml.c5.xlarge"]
    # (cost is left out: two jobs of a few seconds may round to the same $0.0001 at their two instance types)
    assert {"metric validation:rmse", "metric validation:r2", "model sha256"} <= set(differ)
    assert {"setting instance count", "hp seed", "data train", "data validation", "image", "status"} <= set(same)
    assert all(a != b for a, b in differ.values()) and all(a == b for a, b in same.values())
    record = json.loads((repo / "jobs" / first / "job.json").read_text())
    rmse = {m["MetricName"]: m["Value"] for m in record["FinalMetricDataList"]}["validation:rmse"]
    assert differ["metric validation:rmse"][0] == f"{rmse:.6g}"


def test_compare_refuses_one_job_or_an_unknown_one_in_one_line(two_jobs):
    repo, first, _ = two_jobs
    for jobs, said in ((first, f"make compare takes two or more jobs (JOBS='{first}' names one): make compare "
                                "JOBS='<job> <job>' (`make jobs` lists them)"),
                       (f"{first} {first}", "make compare takes two or more jobs"),
                       ("", "make compare takes two or more jobs: make compare JOBS='<job> <job>'"),
                       (f"{first} nobody-1", "no local job named 'nobody-1' in jobs/: `make jobs` lists them"),
                       (f"{first} ../jobs", "JOBS='../jobs' is not a job name"),
                       ("*", "JOBS='*' is not a job name"),  # read as given, never a shell's glob of the folder
                       (f"{first} *", "JOBS='*' is not a job name")):
        done = make(repo, "compare", f"JOBS={jobs}")
        assert done.returncode == 2, (jobs, done.stderr)
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("sagemake: ")]
        assert said in line and done.stdout == ""
