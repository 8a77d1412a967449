"""The one config resolver: layers, sources, and every problem in one error."""

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, tool_venv

from sagemake.cli import UserError
from sagemake.config import DEFAULTS, KINDS, SETTINGS, command_line, docs, example, resolve

AWS = {
    "AWS_REGION": "eu-central-1",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker-train",
    "S3_BUCKET": "my-bucket",
    "ECR_REPOSITORY": "my-train",
}


def write(path, **values):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_defaults_alone_make_a_local_config(tmp_path):
    config = resolve(root=tmp_path, environ={})
    assert config.env == "local"
    assert config.values == DEFAULTS
    assert set(config.sources.values()) == {"default"}


def test_layers_in_order_defaults_dotenv_env_file_environment(tmp_path):
    write(tmp_path / ".env", PROJECT_NAME="dotenv", INSTANCE_TYPE="ml.c5.xlarge", VOLUME_SIZE_GB="50", **AWS)
    write(tmp_path / ".env.dev", INSTANCE_TYPE="ml.g5.xlarge", VOLUME_SIZE_GB="60")
    config = resolve(root=tmp_path, environ={"ENV": "dev", "VOLUME_SIZE_GB": "70"})
    assert config.env == "dev"
    assert (config["PROJECT_NAME"], config.sources["PROJECT_NAME"]) == ("dotenv", ".env")
    assert (config["INSTANCE_TYPE"], config.sources["INSTANCE_TYPE"]) == ("ml.g5.xlarge", ".env.dev")
    assert (config["VOLUME_SIZE_GB"], config.sources["VOLUME_SIZE_GB"]) == ("70", "environment")
    assert (config["DATA_DIR"], config.sources["DATA_DIR"]) == ("data", "default")


def test_env_file_of_another_env_is_not_read(tmp_path):
    write(tmp_path / ".env.dev", PROJECT_NAME="dev-only")
    assert resolve(root=tmp_path, environ={})["PROJECT_NAME"] == "sagemake-example"


def test_dotenv_quoting_and_comments_are_parsed_by_python_dotenv(tmp_path):
    (tmp_path / ".env").write_text("# comment\nHP='n_estimators=5 target=\"a b\"'  # trailing\nCHANNELS=train\n")
    config = resolve(root=tmp_path, environ={})
    assert config["HP"] == 'n_estimators=5 target="a b"'
    assert config.words("CHANNELS") == ["train"]


def test_prod_is_known_without_its_own_file(tmp_path):
    write(tmp_path / ".env", **AWS)
    assert resolve(root=tmp_path, environ={"ENV": "prod"}).env == "prod"


def test_unknown_env_names_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"unknown ENV 'stagign': use ENV=local, ENV=prod, or create \.env\.stagign"):
        resolve(root=tmp_path, environ={"ENV": "stagign"})


def test_every_problem_is_reported_at_once(tmp_path):
    write(tmp_path / ".env", INSTANCE_COUNT="0", CONTAINER_ENGINE="rkt", PROJECT_NAME="has space", TYPO="1")
    with pytest.raises(UserError) as caught:
        resolve(root=tmp_path, environ={"ENV": "prod", "MAX_RUNTIME_SECONDS": "forever"})
    message = str(caught.value)
    assert message.startswith("6 config problem(s): ")
    for expected in (
        ".env: unknown setting TYPO",
        "INSTANCE_COUNT='0' must be a whole number from 1 to 100",
        "MAX_RUNTIME_SECONDS='forever' must be a whole number",
        "CONTAINER_ENGINE='rkt' must be one of: docker, podman",
        "PROJECT_NAME must be 1-32 letters, digits or '-'",
        "AWS_REGION, SAGEMAKER_ROLE_ARN, S3_BUCKET, ECR_REPOSITORY required for ENV=prod",
    ):
        assert expected in message
    assert "\n" not in message


def test_malformed_role_arn_is_refused(tmp_path):
    write(tmp_path / ".env", **{**AWS, "SAGEMAKER_ROLE_ARN": "sagemaker-train"})
    with pytest.raises(UserError, match=r"SAGEMAKER_ROLE_ARN='sagemaker-train' is not an IAM role ARN"):
        resolve(root=tmp_path, environ={"ENV": "prod"})


@pytest.mark.parametrize("uri, refused", [
    ("arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team", None),
    ("arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-5ABC", None),
    ("arn:aws:sagemaker:eu-west-1:123456789012:endpoint/team", "is neither a SageMaker MLflow tracking server nor an "
     "MLflow App: use arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name> or .../mlflow-app/<id>"),
    ("arn:aws:s3:::bucket/mlflow-app/x", "is neither a SageMaker MLflow tracking server nor an MLflow App"),
    ("mlruns", "is a folder, MLflow's file store, which it no longer takes: use a SQLite file"),
    ("file:///srv/mlruns", "is a folder, MLflow's file store"),
    ("sqlite:////srv/mlflow.db", None), ("https://mlflow.example.com", None),
])
def test_the_tracking_store_is_one_mlflow_can_write(tmp_path, uri, refused):
    if refused is None:
        assert resolve(root=tmp_path, environ={"MLFLOW_TRACKING_URI": uri})["MLFLOW_TRACKING_URI"] == uri
    else:
        with pytest.raises(UserError, match=re.escape(f"MLFLOW_TRACKING_URI={uri!r} {refused}")):
            resolve(root=tmp_path, environ={"MLFLOW_TRACKING_URI": uri})
        assert resolve(root=tmp_path, environ={"MLFLOW_TRACKING_URI": uri, "TRACKING": "false"})  # not used


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"PROJECT_NAME=\xff\xfe\n")
    with pytest.raises(UserError, match=r"cannot read \.env \(UnicodeDecodeError\)"):
        resolve(root=tmp_path, environ={})


def test_a_file_that_cannot_be_opened_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / ".env").mkdir()  # even root cannot read a folder as a file
    with pytest.raises(UserError, match=r"cannot read \.env \(IsADirectoryError\)"):
        resolve(root=tmp_path, environ={})


def test_env_example_documents_every_setting_with_its_default():
    from dotenv import dotenv_values

    assert dict(dotenv_values(ROOT / ".env.example")) == DEFAULTS


def test_aws_variables_in_dotenv_reach_boto3_and_the_shell_ones_win(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("AWS_PROFILE", "restored-after-the-test")
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_DEFAULT_OUTPUT", "from-shell")
    write(tmp_path / ".env", AWS_PROFILE="training", AWS_DEFAULT_OUTPUT="from-dotenv")
    config = resolve(root=tmp_path, environ=os.environ)
    assert os.environ["AWS_PROFILE"] == "training"
    assert os.environ["AWS_DEFAULT_OUTPUT"] == "from-shell"
    assert config.aws == {"AWS_PROFILE": "training"}


def test_a_line_dotenv_cannot_read_stops_everything_naming_the_file_and_line(tmp_path):
    (tmp_path / ".env").write_text("PROJECT_NAME=fine\nHP='max_depth=4\nINSTANCE_TYPE=ml.c5.xlarge\n")
    with pytest.raises(UserError, match=r"\.env: line 2 cannot be read: check its quotes") as caught:
        resolve(root=tmp_path, environ={})
    assert "max_depth" not in str(caught.value)  # the line's text is not repeated: it may hold a secret


def test_aws_credentials_in_a_settings_file_are_refused(tmp_path):
    write(tmp_path / ".env", AWS_PROFILE="team", AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI-secret", AWS_SESSION_TOKEN="tok",
          AWS_SECURITY_TOKEN="old-name-tok")
    with pytest.raises(UserError) as caught:
        resolve(root=tmp_path, environ={})
    message = str(caught.value)
    assert "3 config problem(s)" in message and "AWS_SECURITY_TOKEN is a credential" in message
    assert ".env: AWS_SECRET_ACCESS_KEY is a credential" in message and "AWS_SESSION_TOKEN is a credential" in message
    assert "use the standard AWS chain" in message and "wJalrXUtnFEMI" not in message


@pytest.mark.parametrize("value", ["ml.m5.huge", "m5.large", "", "ml.m5", "ML.M5.LARGE"])
def test_an_instance_type_sagemaker_does_not_have_is_refused(tmp_path, value):
    with pytest.raises(UserError, match=f"INSTANCE_TYPE='{value}' is not a SageMaker instance type"):
        resolve(root=tmp_path, environ={"INSTANCE_TYPE": value})


@pytest.mark.parametrize("value", ["ml.m5.large", "ml.g5.12xlarge", "ml.p4d.24xlarge", "ml.trn1.32xlarge",
                                   "ml.c5n.metal", "ml.t3.medium"])
def test_real_instance_types_are_taken(tmp_path, value):
    assert resolve(root=tmp_path, environ={"INSTANCE_TYPE": value})["INSTANCE_TYPE"] == value


def test_project_name_counts_its_hyphens_so_every_job_name_fits(tmp_path):
    from sagemake.jobs.training import JOB_NAME, job_name

    longest = "a-" * 15 + "ab"  # 32 characters
    assert JOB_NAME.fullmatch(job_name(resolve(root=tmp_path, environ={"PROJECT_NAME": longest})["PROJECT_NAME"],
                                       "abc1234"))
    with pytest.raises(UserError, match="PROJECT_NAME must be 1-32 letters, digits or '-'"):
        resolve(root=tmp_path, environ={"PROJECT_NAME": "a-" * 31 + "a"})


def test_a_credential_in_a_private_dependency_url_is_refused_without_repeating_it(tmp_path):
    dep = "https://ci:ghp_s3cr3tT0ken@github.com/acme/features.git@v1.0.0"
    with pytest.raises(UserError, match="PRIVATE_DEPS: github.com/acme/features.git is written with a user or token") \
            as caught:
        resolve(root=tmp_path, environ={"PRIVATE_DEPS": dep})
    assert "ghp_s3cr3tT0ken" not in str(caught.value) and "set GIT_HTTPS_TOKEN" in str(caught.value)
    ssh = "git@github.com:acme/features.git@v1.0.0"
    assert resolve(root=tmp_path, environ={"PRIVATE_DEPS": ssh})["PRIVATE_DEPS"] == ssh


def test_a_spot_drill_is_for_local_jobs_only(tmp_path):
    assert resolve(root=tmp_path, environ={"SPOT_DRILL_SECONDS": "20"}).int("SPOT_DRILL_SECONDS") == 20
    with pytest.raises(UserError, match="SPOT_DRILL_SECONDS interrupts local jobs only: on SageMaker, USE_SPOT=true"):
        resolve(root=tmp_path, environ={"ENV": "prod", "SPOT_DRILL_SECONDS": "20"})


# The settings table: the files printed from it, its examples, its kinds, its vocabulary.


def test_env_example_and_the_settings_page_are_the_table_printed():
    fix = "print it again: python -m sagemake config --example > .env.example, --docs > docs/settings.md"
    assert (ROOT / ".env.example").read_text() == example(), fix
    assert (ROOT / "docs/settings.md").read_text() == docs(), fix


def test_every_setting_and_parameter_is_on_the_settings_page_and_only_settings_in_env_example():
    page, env_example = (ROOT / "docs/settings.md").read_text(), (ROOT / ".env.example").read_text()
    for row in SETTINGS:
        assert f"| `{row.name}` |" in page
        assert (f"\n{row.name}=" in env_example) == (row.kind != "parameter")
    assert set(DEFAULTS) == {row.name for row in SETTINGS if row.kind != "parameter"}


def test_every_row_is_whole_and_its_example_resolves(tmp_path):
    kinds = {"str", "int", "number", "bool", "choice", "path", "words", "instance_type", "parameter"}
    for row in SETTINGS:
        assert row.kind in kinds and row.doc and row.section, row.name
        assert (row.low is not None and row.high is not None) == (row.kind == "int"), row.name
        assert bool(row.choices) == (row.kind in ("choice", "bool")), row.name
        if row.example:
            assert resolve(root=tmp_path, environ={row.name: row.example})[row.name] == row.example


def test_applies_names_job_kinds_and_make_targets():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for row in SETTINGS:
        assert set(row.applies) <= {"all", *KINDS, *targets}, row.name


def test_typed_access_follows_the_table(tmp_path):
    config = resolve(root=tmp_path, environ={"USE_SPOT": "false", "CHANNELS": "train validation"})
    assert config.int("INSTANCE_COUNT") == 1 and config.typed("TUNE_MAX_JOBS") == 10
    assert config.flag("USE_SPOT") is False and config.typed("USE_SPOT") is False
    assert config.number("ENDPOINT_TARGET_INVOCATIONS") == 70.0
    assert config.words("CHANNELS") == ["train", "validation"] and config.path("DATA_DIR") == tmp_path / "data"
    assert config.typed("CODE_MODE") == "image" and config.values["INSTANCE_COUNT"] == "1"  # strings, for bash
    with pytest.raises(TypeError, match="HP is a words setting, not int"):
        config.int("HP")


def test_every_typed_call_in_the_code_names_a_setting_of_that_kind():
    kinds = {"int": "int", "flag": "bool", "path": "path", "words": "words"}
    by_name = {row.name: row.kind for row in SETTINGS}
    calls = [(path, method, name) for path in [*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py")]
             for method, name in re.findall(r"config\.(int|flag|path|words)\(\"([A-Z_0-9]+)\"\)", path.read_text())]
    assert calls
    for path, method, name in calls:
        assert by_name.get(name) == kinds[method], f"{path.name}: config.{method}({name!r})"


# Unknown names: in the files and on make's command line (GNU make 4 puts `VAR=value` words in MAKEFLAGS).


def refused(tmp_path, **environ) -> str:
    with pytest.raises(UserError) as caught:
        resolve(root=tmp_path, environ=environ)
    assert caught.value.status == 2
    return str(caught.value)


def test_makeflags_as_gnu_make_writes_it():
    measured = r"s --no-print-directory -- X=a\ 'b'\ \"c\"\ d\\e V=$$(Y) HP=n_estimators=300\ max_depth=4"
    assert command_line(measured) == [("HP", "n_estimators=300 max_depth=4"), ("V", "$(Y)"), ("X", "a 'b' \"c\" d\\e")]
    assert command_line(r" --no-print-directory -- W=3 Y=2 X:=1") == [("X", "1"), ("Y", "2"), ("W", "3")]
    assert command_line(r"s -j2 --jobserver-auth=3,4 -I/tmp/x\ y --no-print-directory") == []
    assert command_line("") == []


@pytest.mark.parametrize("given, meant", [("INSTANCE_TYPES", "INSTANCE_TYPE"), ("CHANNEL", "CHANNELS"),
                                          ("MAX_RUNTIME", "MAX_RUNTIME_SECONDS"), ("TUNE_MAX_JOB", "TUNE_MAX_JOBS"),
                                          ("instance_type", "INSTANCE_TYPE"), ("JOBB", "JOB")])
def test_a_misspelt_name_on_the_command_line_is_refused_with_the_name_meant(tmp_path, given, meant):
    message = refused(tmp_path, MAKEFLAGS=f"s --no-print-directory -- {given}=1", **{given: "1"})
    assert message == f"1 config problem(s): make command line: unknown setting {given}: did you mean {meant}?"


def test_a_hyperparameter_that_lost_its_quotes_gets_hps_hint(tmp_path):
    # make plan HP=n_estimators=300 max_depth=4
    message = refused(tmp_path, MAKEFLAGS="s -- max_depth=4 HP=n_estimators=300", HP="n_estimators=300",
                      max_depth="4")
    assert message == ("1 config problem(s): make command line: unknown setting max_depth: "
                       "did you mean HP='n_estimators=300 max_depth=4'?")
    message = refused(tmp_path, MAKEFLAGS="s -- subsample=0.5 max_depth=4")  # make plan max_depth=4 subsample=0.5
    assert message == ("1 config problem(s): make command line: unknown setting max_depth, subsample: "
                       "did you mean HP='max_depth=4 subsample=0.5'?")


def test_a_name_like_no_other_points_to_the_list(tmp_path):
    assert refused(tmp_path, MAKEFLAGS="-- FROBNICATE=1") == (
        "1 config problem(s): make command line: unknown setting FROBNICATE: see .env.example or docs/settings.md "
        "for the names")


def test_known_names_and_quoted_values_with_spaces_pass(tmp_path):
    given = {"HP": "n_estimators=300 max_depth=4", "JOB": "a 'b' c", "ENV": "local", "DEBUG": "1", "KEEP": "3",
             "AWS_PROFILE": "team", "GIT_HTTPS_TOKEN": "t", "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
             "CONTAINER_RUN_FLAGS": "--network host", "VENV": "/a venv", "PYTHON": "python3.12"}
    makeflags = "s --no-print-directory -- " + " ".join(
        f"{name}={value}".replace("\\", "\\\\").replace(" ", "\\ ") for name, value in reversed(given.items()))
    config = resolve(root=tmp_path, environ={**given, "MAKEFLAGS": makeflags})
    assert config["HP"] == "n_estimators=300 max_depth=4" and config["CONTAINER_RUN_FLAGS"] == "--network host"
    assert resolve(root=tmp_path, environ={"MAKEFLAGS": "s -j2 --jobserver-auth=3,4 --no-print-directory"})


def test_a_removed_setting_says_what_replaced_it_in_a_file_and_on_the_command_line(tmp_path):
    fix = ("TUNE_OBJECTIVE_TYPE was removed: declare the direction as TUNE_OBJECTIVE=<metric>:max or :min "
           "(or in METRICS)")
    assert refused(tmp_path, MAKEFLAGS="s -- TUNE_OBJECTIVE_TYPE=Minimize") == (
        f"1 config problem(s): make command line: {fix}")
    write(tmp_path / ".env", TUNE_OBJECTIVE_TYPE="Maximize")
    assert refused(tmp_path) == f"1 config problem(s): .env: {fix}"


def test_an_unknown_name_in_a_file_gets_the_same_hint(tmp_path):
    write(tmp_path / ".env", INSTANCE_TYPES="ml.m5.xlarge", max_depth="4", HP="n_estimators=300", ENV="prod")
    message = refused(tmp_path)
    assert message.startswith("3 config problem(s): ")
    assert ".env: unknown setting INSTANCE_TYPES: did you mean INSTANCE_TYPE?" in message
    assert ".env: unknown setting max_depth: did you mean HP='n_estimators=300 max_depth=4'?" in message
    assert ".env: ENV is a command parameter, not a setting: pass it as make ... ENV=..." in message


def make_config(*args) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in DEFAULTS and key not in ("ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "config", *args], cwd=ROOT, env={**env, "VENV": tool_venv()},
                          capture_output=True, text=True, timeout=120)


def test_make_refuses_a_misspelt_setting_and_a_hyperparameter_without_quotes():
    result = make_config("INSTANCE_TYPES=ml.m5.xlarge")
    assert result.returncode == 2, result.stderr
    assert "make command line: unknown setting INSTANCE_TYPES: did you mean INSTANCE_TYPE?" in result.stderr
    result = make_config("HP=n_estimators=300", "max_depth=4")
    assert result.returncode == 2, result.stderr
    assert "unknown setting max_depth: did you mean HP='n_estimators=300 max_depth=4'?" in result.stderr
    result = make_config("HP=n_estimators=300 max_depth=4", "JOB=a b")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^HP += 'n_estimators=300 max_depth=4' +# environment$", result.stdout, re.MULTILINE)


def test_a_command_outside_a_project_says_so_and_from_a_subfolder_finds_it(tmp_path):
    outside = subprocess.run([sys.executable, "-m", "sagemake", "config"], capture_output=True, text=True,
                             cwd=tmp_path, env={**os.environ, "ENV": "local"})
    assert outside.returncode == 2
    assert outside.stderr.startswith(f"sagemake: no sagemake project in {tmp_path.resolve()} or above it (no src/"
                                     "sagemake/): run the command in your checkout"), outside.stderr
    below = subprocess.run([sys.executable, "-m", "sagemake", "config"], capture_output=True, text=True,
                           cwd=ROOT / "src" / "trainer", env={**os.environ, "ENV": "local"})
    assert below.returncode == 0, below.stderr
    assert "PROJECT_NAME" in below.stdout


def test_a_reader_that_goes_away_is_no_traceback():
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m sagemake config | head -n 1", shell=True,
                          capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.startswith("# ENV=") and "Traceback" not in done.stderr, done.stderr
