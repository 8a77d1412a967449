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
from sagemake.request import build_request, git_state, image_tag, job_name, metric_definitions, parse_pairs, tags

SAGEMAKER_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_job_name_is_project_sha_and_time_and_valid_for_sagemaker():
    when = datetime(2026, 11, 22, 4, 5, 6, 789000, tzinfo=timezone.utc)
    assert job_name("fraud", "abc1234", when) == "fraud-abc1234-20261122-040506-789"
    longest = job_name("p" * 32, "abc1234", when)
    assert SAGEMAKER_JOB_NAME.match(longest) and len(longest) <= 63


def test_job_names_differ_a_millisecond_apart():
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    second = first.replace(microsecond=1000)
    assert job_name("p", "s", first) != job_name("p", "s", second)


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
    return tmp_path


def test_image_tag_follows_what_goes_into_the_image_only(tmp_path):
    root = copy_image_inputs(tmp_path)
    tag = image_tag(root)
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    (root / "src/sagemake/local.py").write_text("# not in the image\n")
    (root / "README.md").write_text("not in the image\n")
    assert image_tag(root) == tag
    with (root / "src/trainer/train.py").open("a") as handle:
        handle.write("# a code change\n")
    changed = image_tag(root)
    assert changed != tag
    (root / "docker/requirements.txt").write_text("numpy==1\n")
    assert image_tag(root) not in (tag, changed)


def test_parse_pairs_reads_shell_words_and_rejects_the_rest():
    assert parse_pairs("a=1 b='x y' c=", "HP") == {"a": "1", "b": "x y", "c": ""}
    with pytest.raises(UserError, match=r"HP: 'oops' is not key=value"):
        parse_pairs("a=1 oops", "HP")
    with pytest.raises(UserError, match=r"JOB_ENV cannot be read \(No closing quotation\)"):
        parse_pairs("a='1", "JOB_ENV")


def test_request_carries_every_setting(tmp_path):
    (tmp_path / ".env").write_text(
        "HP='max_depth=5 learning_rate=0.25'\nJOB_ENV='MODE=fast TOKEN_FILE=/x'\nINSTANCE_TYPE=ml.c5.2xlarge\n"
        "VOLUME_SIZE_GB=80\nMAX_RUNTIME_SECONDS=600\nPROJECT_NAME=churn\n")
    config = resolve(root=tmp_path, environ={})
    request = build_request(config, "churn-abc1234-x", "churn:tag", {"train": "file:///d/train"}, "file:///jobs",
                            ("abc1234", True))
    assert request["TrainingJobName"] == "churn-abc1234-x"
    assert request["AlgorithmSpecification"]["TrainingImage"] == "churn:tag"
    hps = request["HyperParameters"]
    assert all(isinstance(v, str) for v in hps.values())
    assert (hps["max_depth"], hps["learning_rate"]) == ("5", "0.25")
    assert (hps["n_estimators"], hps["target"]) == ("100", "target")
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "file:///d/train"
    assert request["OutputDataConfig"] == {"S3OutputPath": "file:///jobs"}
    assert request["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 80}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert request["Environment"] == {"MODE": "fast", "TOKEN_FILE": "/x"}
    assert tags(request) == {"project": "churn", "git-sha": "abc1234", "git-dirty": "true", "env": "local"}
    assert "RoleArn" not in request  # none configured: local jobs need none


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
    assert {"train", "sagemake/contract.py", "trainer/train.py", "trainer/hyperparameters.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n]


def test_private_dependencies_are_part_of_the_image_tag(tmp_path):
    root = copy_image_inputs(tmp_path)
    assert image_tag(root, "git@x:a/b.git@v1") != image_tag(root, "git@x:a/b.git@v2") != image_tag(root)


def test_git_state_without_git_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state(ROOT) == ("nogit", False)


@pytest.mark.parametrize("line, value", [
    ("validation:f1=0.98.", 0.98), ("validation:f1=1e-3", 0.001), ("validation:f1=.5", 0.5),
    ("validation:f1=-2", -2.0), ("validation:f1=nan", "nan"), ("validation:f1=...", None),
])
def test_metric_regexes_read_numbers_only(line, value):
    (definition,) = [d for d in metric_definitions() if d["Name"] == "validation:f1"]
    found = re.findall(definition["Regex"], line)
    if value is None:
        assert found == []
    elif value == "nan":
        assert found == ["nan"]
    else:
        assert float(found[-1]) == value
