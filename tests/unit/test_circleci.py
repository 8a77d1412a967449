"""The CircleCI pipeline: every job step is a make target a person can run by hand."""

import yaml
from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / ".circleci/config.yml").read_text())


def run_commands(steps):
    for step in steps:
        if isinstance(step, dict) and "run" in step:
            run = step["run"]
            yield run["command"] if isinstance(run, dict) else run


def test_every_job_runs_make_targets_only():
    for name, job in CONFIG["jobs"].items():
        commands = list(run_commands(job["steps"]))
        assert commands, name
        for command in commands:
            assert command.startswith("make "), (name, command)


def test_aws_access_is_through_oidc_without_keys():
    text = (ROOT / ".circleci/config.yml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
    (oidc,) = run_commands(CONFIG["commands"]["aws-oidc"]["steps"])
    assert "CIRCLE_OIDC_TOKEN_V2" in oidc and "AWS_WEB_IDENTITY_TOKEN_FILE" in oidc


def test_main_builds_then_trains_after_approval_and_every_push_tests():
    jobs = {list(j)[0] if isinstance(j, dict) else j: (j[list(j)[0]] if isinstance(j, dict) else {})
            for j in CONFIG["workflows"]["test-build-train"]["jobs"]}
    assert jobs["test"] == {}  # every branch
    assert jobs["build-and-push"]["requires"] == ["test"]
    assert jobs["approve-training"]["type"] == "approval"
    assert jobs["train"]["requires"] == ["approve-training"]
    for name in ("build-and-push", "approve-training", "train"):
        assert jobs[name]["filters"] == {"branches": {"only": "main"}}
    test_steps = CONFIG["jobs"]["test"]["steps"]
    assert {"store_test_results": {"path": "build/test-results"}} in test_steps


def test_the_training_job_keeps_the_report_whatever_the_training_did():
    steps = CONFIG["jobs"]["train"]["steps"]
    (report,) = [s["run"] for s in steps if isinstance(s, dict) and "run" in s and "report" in s["run"]["command"]]
    assert report["command"] == "make report ENV=prod" and report["when"] == "always"
    assert {"store_artifacts": {"path": "build/report.html"}} in steps
