"""The CreateTrainingJob request: names, image tags, hyperparameters, fields."""

import re
import shutil
import subprocess
import tarfile
from datetime import datetime, timezone

import pytest
from conftest import ROOT

from sagemake import sourcedir
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.image import tag
from sagemake.jobs.training import (
    git_state,
    job_name,
    job_named,
    metric_definitions,
    metric_values,
    metric_warnings,
    metric_word,
    parse_pairs,
    plan,
    tags,
)
from trainer.metrics import METRICS

SAGEMAKER_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_job_name_is_project_sha_and_time_and_valid_for_sagemaker():
    when = datetime(2026, 11, 22, 4, 5, 6, 789000, tzinfo=timezone.utc)
    assert job_name("fraud", "abc1234", when, tail="k3x9q") == "fraud-abc1234-261122-040506-789k3x9q"
    longest = job_name("p" * 32, "abc1234", when)
    assert SAGEMAKER_JOB_NAME.match(longest) and len(longest) == 63


@pytest.mark.parametrize("given", ["/home/me/jobs/x-1/", "../jobs/x-1", "jobs/x-1", "x-1/", "", "-x", "x" * 64])
def test_a_job_name_given_by_a_user_is_never_a_path(given):
    with pytest.raises(UserError, match="is not a job name"):
        job_named(given)
    name = "sagemake-example-abc1234-261122-040506-789k3x9q"
    assert job_named(name) == name


def test_job_names_sort_by_time_and_differ_within_one_millisecond():
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    second = first.replace(microsecond=1000)
    assert job_name("p", "s", first, tail="zzzzz") < job_name("p", "s", second, tail="00000")
    assert len({job_name("p", "s", first) for _ in range(100)}) == 100  # 36**5 tails: a clash is 1 in 12,000 here


def test_git_state_reads_commit_and_dirtiness(tmp_path):
    assert git_state(tmp_path) == ("nogit", False)
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a").write_text("1")
    git("add", "a")
    git("commit", "-qm", "one")
    sha, dirty = git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{7}", sha) and dirty is False
    (tmp_path / "a").write_text("2")
    assert git_state(tmp_path) == (sha, True)


def copy_image_inputs(tmp_path):
    for part in ("docker", "src"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".dockerignore", tmp_path)
    return tmp_path


def image_tag(root, private_deps="", code_mode="image", **settings):
    return tag(resolve(root=root, environ={"PRIVATE_DEPS": private_deps, "CODE_MODE": code_mode, **settings}))


def test_image_tag_follows_what_goes_into_the_image_only(tmp_path):
    root = copy_image_inputs(tmp_path)
    tag = image_tag(root)
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    (root / "src/sagemake/aws/api.py").write_text("# not in the image\n")
    (root / "README.md").write_text("not in the image\n")
    (root / "src/trainer/__pycache__").mkdir()
    (root / "src/trainer/__pycache__/train.cpython-311.pyc").write_bytes(b"cache")
    assert image_tag(root) == tag
    with (root / "src/trainer/train.py").open("a") as handle:
        handle.write("# a code change\n")
    changed = image_tag(root)
    assert changed != tag
    (root / "docker/requirements.txt").write_text("numpy==1\n")
    assert image_tag(root) not in (tag, changed)


def test_the_tag_follows_a_users_own_dockerfile_and_context(tmp_path):
    """Any file the engine receives counts, whatever the Dockerfile COPYs; .dockerignore'd ones do not."""
    context = tmp_path / "theirs"
    (context / "lib").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /opt/ml/code/\n")
    (context / "lib/helpers.py").write_text("A = 1\n")
    (context / "notes.md").write_text("ignored\n")
    (context / ".dockerignore").write_text("notes.md\n")
    settings = {"DOCKERFILE": "theirs/Dockerfile", "BUILD_CONTEXT": "theirs"}
    first = image_tag(tmp_path, **settings)
    (context / "notes.md").write_text("edited, still ignored\n")
    assert image_tag(tmp_path, **settings) == first
    (context / "lib/helpers.py").write_text("A = 2\n")
    second = image_tag(tmp_path, **settings)
    assert second != first
    assert image_tag(tmp_path, **settings, CONTAINER_BUILD_FLAGS="--build-arg MODE=fast") != second
    assert image_tag(tmp_path, **settings, CONTAINER_BUILD_FLAGS="--network host --pull") == second
    with pytest.raises(UserError, match="DOCKERFILE=nope/Dockerfile does not exist"):
        image_tag(tmp_path, DOCKERFILE="nope/Dockerfile")
    with pytest.raises(UserError, match="BUILD_CONTEXT=nowhere is not a folder"):
        image_tag(tmp_path, BUILD_CONTEXT="nowhere")


def test_parse_pairs_reads_shell_words_and_rejects_the_rest():
    assert parse_pairs("a=1 b='x y' c=", "HP") == {"a": "1", "b": "x y", "c": ""}
    with pytest.raises(UserError, match=r"HP: 'oops' is not key=value"):
        parse_pairs("a=1 oops", "HP")
    with pytest.raises(UserError, match=r"JOB_ENV cannot be read \(No closing quotation\)"):
        parse_pairs("a='1", "JOB_ENV")
    with pytest.raises(UserError, match=r"^HP: max_depth is given twice \(max_depth=4 and max_depth=6\): keep one$"):
        parse_pairs("max_depth=4 eta=0.1 max_depth=6", "HP")


def test_request_carries_every_setting(tmp_path, example_data):
    (tmp_path / ".env").write_text(
        "HP='max_depth=5 learning_rate=0.25'\nJOB_ENV='MODE=fast TOKEN_FILE=/x'\nINSTANCE_TYPE=ml.c5.2xlarge\n"
        "VOLUME_SIZE_GB=80\nMAX_RUNTIME_SECONDS=600\nPROJECT_NAME=churn\n"
        f"DATA_DIR='{example_data}'\nCONTAINER_ENTRYPOINT='python3 -m mine'\nCONTAINER_ARGUMENTS='--fast \"a b\"'\n")
    root = copy_image_inputs(tmp_path)
    config = resolve(root=root, environ={})
    request = plan(config, LocalExecutor(config))
    assert re.fullmatch(r"churn-nogit-\d{6}-\d{6}-\d{3}[a-z0-9]{5}", request["TrainingJobName"])
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"] == f"churn:{tag(config)}"
    assert (spec["ContainerEntrypoint"], spec["ContainerArguments"]) == (["python3", "-m", "mine"], ["--fast", "a b"])
    hps = request["HyperParameters"]
    assert all(isinstance(v, str) for v in hps.values())
    assert (hps["max_depth"], hps["learning_rate"]) == ("5", "0.25")
    assert (hps["n_estimators"], hps["target"]) == ("100", "target")
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "validation"]  # DATA_DIR's folders
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (example_data / "train").as_uri()
    assert request["OutputDataConfig"] == {"S3OutputPath": (root / "jobs").as_uri()}
    assert request["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 80}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert request["Environment"] == {"MODE": "fast", "TOKEN_FILE": "/x"}
    assert tags(request) == {"project": "churn", "git-sha": "nogit", "git-dirty": "false", "env": "local",
                             "sagemake-image": "true"}
    assert "RoleArn" not in request  # none configured: local jobs need none


def local_plan(root, example_data, **settings):
    config = resolve(root=root, environ={"DATA_DIR": str(example_data), **settings})
    return plan(config, LocalExecutor(config))


def test_with_your_own_image_hyperparameters_pass_as_strings_and_metrics_come_from_the_setting(tmp_path,
                                                                                              example_data):
    request = local_plan(ROOT, example_data, TRAINING_IMAGE="theirs:1.0", HP="alpha=0.5 layers=[1,2]",
                         METRICS="rmse r2")
    assert request["HyperParameters"] == {"alpha": "0.5", "layers": "[1,2]"}  # no schema of ours applies
    assert request["AlgorithmSpecification"]["TrainingImage"] == "theirs:1.0"
    assert tags(request)["sagemake-image"] == "false"  # its model is served by that image alone
    assert [d["Name"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]] == ["rmse", "r2"]
    with pytest.raises(UserError, match="PRIMARY_METRIC='mae' is not a declared metric: use one of rmse, r2"):
        local_plan(ROOT, example_data, TRAINING_IMAGE="theirs:1.0", METRICS="rmse r2", PRIMARY_METRIC="mae")


@pytest.mark.parametrize("hp, message", [
    ("sagemaker_program=x", "hyperparameter sagemaker_program: names starting with 'sagemaker_' are SageMaker's own"),
    ("a=" + "v" * 2501, "hyperparameter a has a value of 2501 characters: SageMaker takes at most 2500"),
    ("k" * 257 + "=1", "has 257 characters: SageMaker takes at most 256"),
    (" ".join(f"h{i}=1" for i in range(101)), "101 hyperparameters: SageMaker takes at most 100"),
])
def test_sagemakers_limits_on_hyperparameters_are_checked_before_submission(example_data, hp, message):
    with pytest.raises(UserError, match=re.escape(message)):
        local_plan(ROOT, example_data, TRAINING_IMAGE="theirs:1.0", HP=hp)


def test_pipe_mode_and_bad_channel_names_are_refused(tmp_path, example_data):
    with pytest.raises(UserError, match="INPUT_MODES: 'Pipe' for train is not supported: use File or FastFile"):
        local_plan(ROOT, example_data, INPUT_MODES="train=Pipe")
    with pytest.raises(UserError, match="DATA_DISTRIBUTION: 'Sharded' for train is not supported: use "
                                        "FullyReplicated or ShardedByS3Key"):
        local_plan(ROOT, example_data, DATA_DISTRIBUTION="train=Sharded")
    with pytest.raises(UserError, match="DATA_DISTRIBUTION names 'test', which is not a channel"):
        local_plan(ROOT, example_data, DATA_DISTRIBUTION="test=ShardedByS3Key")
    (tmp_path / "bad name").mkdir()
    (tmp_path / "bad name/x.csv").write_text("1\n")
    with pytest.raises(UserError, match="'bad name' is not a SageMaker channel name"):
        local_plan(ROOT, tmp_path)


def test_in_script_mode_a_code_change_keeps_the_image_and_changes_the_code(tmp_path):
    root = copy_image_inputs(tmp_path)
    image, code = image_tag(root, code_mode="script"), sourcedir.tag(root)
    assert image != image_tag(root)  # another Dockerfile, another image
    with (root / "src/trainer/train.py").open("a") as handle:
        handle.write("# a code change\n")
    assert image_tag(root, code_mode="script") == image
    assert sourcedir.tag(root) != code
    (root / "docker/requirements-toolkit.txt").write_text("sagemaker-training==0\n")
    assert image_tag(root, code_mode="script") != image


def test_sourcedir_is_reproducible_and_holds_the_program(tmp_path):
    root = copy_image_inputs(tmp_path / "root")
    one = sourcedir.write(root, tmp_path / "one" / "sourcedir.tar.gz")
    two = sourcedir.write(root, tmp_path / "two" / "sourcedir.tar.gz")
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        names = tar.getnames()
        assert tar.getmember("train").mode & 0o111  # the toolkit runs it as ./train
    assert {"train", "sagemake/contract/train.py", "trainer/train.py", "trainer/hyperparameters.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n]


def test_private_dependencies_are_part_of_the_image_tag(tmp_path):
    root = copy_image_inputs(tmp_path)
    assert image_tag(root, "git@x:a/b.git@v1") != image_tag(root, "git@x:a/b.git@v2") != image_tag(root)


def test_git_state_without_git_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state(ROOT) == ("nogit", False)


def test_a_metric_matches_its_own_name_only():
    definitions = metric_definitions(["rmse", "validation:rmse"])
    lines = ["train_rmse=9.0", "val_rmse=8.0", "rmse.std=7.0", "train:rmse=6.0", "[algo-1] rmse=0.5",
             "validation:rmse=0.25", "epoch 3: rmse=0.4 loss=2", "validation:rmse=0.3"]
    assert metric_values(definitions, lines) == {"rmse": 0.4, "validation:rmse": 0.3}
    assert metric_values(definitions, ["train_rmse=9.0"]) == {}


def test_metric_warnings_name_undeclared_and_missing_metrics():
    definitions = metric_definitions(["rmse", "mae"])
    lines = ["rmse=0.5", "r2=0.9", "train_rmse=0.4", "progress 10%", "SM_NUM_CPUS=2"]
    found = metric_values(definitions, lines)
    warnings = metric_warnings(definitions, found, lines)
    assert warnings == [
        "declared metric(s) mae never printed as name=<number>: fix METRICS (or src/trainer/metrics.py), or print them",
        "printed but not declared, so not recorded: r2, train_rmse: add them to METRICS (or src/trainer/metrics.py) "
        "to keep them"]


@pytest.mark.parametrize("line, value", [
    ("validation:f1=0.98.", 0.98), ("validation:f1=1e-3", 0.001), ("validation:f1=.5", 0.5),
    ("validation:f1=-2", -2.0), ("validation:f1=nan", "nan"), ("validation:f1=...", None),
])
def test_metric_regexes_read_numbers_only(line, value):
    names = [metric_word(word)[0] for word in METRICS]
    (definition,) = [d for d in metric_definitions(names) if d["Name"] == "validation:f1"]
    found = re.findall(definition["Regex"], line)
    if value is None:
        assert found == []
    elif value == "nan":
        assert found == ["nan"]
    else:
        assert float(found[-1]) == value


def test_a_managed_mlflow_by_arn_is_named_in_the_request(tmp_path, example_data):
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-5ABC"
    root = copy_image_inputs(tmp_path)
    request = local_plan(root, example_data, MLFLOW_TRACKING_URI=arn)
    assert request["MlflowConfig"] == {"MlflowResourceArn": arn, "MlflowExperimentName": "sagemake-example",
                                       "MlflowRunName": request["TrainingJobName"]}
    assert "MlflowConfig" not in local_plan(root, example_data, MLFLOW_TRACKING_URI=arn, TRACKING="false")
    assert "MlflowConfig" not in local_plan(root, example_data)  # the local store: nothing for SageMaker to link
