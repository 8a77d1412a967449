"""A project that is not ours: examples/byo-plain, a training image written with no sagemake code in it
(its ENTRYPOINT takes `train`, its code in /opt/ml/code, one channel named `training`, CSV without a
header, its own hyperparameters), trained by settings alone, as its own Dockerfile and as a prebuilt image.

The image tests need a real engine, as in test_container.py (skipped without one unless
REQUIRE_CONTAINER_TESTS=1); the checks before paying run against the AWS emulator.
"""

import json
import shutil
import subprocess

import pytest
from conftest import CHECKOUT, copy_repo
from emulator import make_bucket, settings
from test_container import ENGINE, FLAGS, engine, image_of, make, podman  # noqa: F401 - fixtures

EXAMPLE = "examples/byo-plain"
BYO = {"DOCKERFILE": f"{EXAMPLE}/Dockerfile", "BUILD_CONTEXT": EXAMPLE, "DATA_DIR": f"{EXAMPLE}/data",
       "CHANNELS": "training", "METRICS": "rmse mae r2", "LOCAL_RUNTIME": "auto"}


@pytest.fixture(scope="module")
def repo(engine, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """A checkout; the byo-plain image built once for the module."""
    repo = copy_repo(tmp_path_factory.mktemp("byo") / "my project")
    subprocess.run([ENGINE, "rmi", "-f", image_of(repo, BYO)], capture_output=True)  # built here, from scratch
    built = make(repo, "build", BYO)
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"{EXAMPLE}/Dockerfile, context {EXAMPLE}" in built.stderr
    return repo


def manifest(repo, job):
    return json.loads((repo / "models" / job / "manifest.json").read_text())


def tracked(repo, job):
    """The job's run in the project's own MLflow store."""
    from mlflow.tracking import MlflowClient

    from sagemake.config import resolve
    from sagemake.tracking import drain

    drain(resolve(root=repo, environ={}))  # its run written, as `make ui` does before reading
    client = MlflowClient(f"sqlite:///{repo / 'build/mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("sagemake-example")
    (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{job}'")
    return run


def latest(repo):
    return max((p for p in (repo / "jobs").iterdir() if (p / "job.json").is_file()), key=lambda p: p.name).name


def test_a_plain_image_trains_by_settings_alone(repo):
    result = make(repo, "train", BYO, "HP=alpha=0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime container (docker, image" in result.stderr
    printed = dict(line.split("=") for line in result.stdout.splitlines()
                   if line.split("=")[0] in ("rmse", "train_rmse", "mae", "r2"))
    job = latest(repo)
    found = manifest(repo, job)
    # rmse is the job's own rmse line, not train_rmse's, which is printed before it
    assert found["metrics"] == pytest.approx({k: float(printed[k]) for k in ("rmse", "mae", "r2")})
    assert float(printed["train_rmse"]) != found["metrics"]["rmse"]
    assert "printed but not declared, so not recorded: train_rmse" in result.stderr
    assert found["hyperparameters"] == {"alpha": "0.5"}  # as given: no schema of ours applies to their image
    assert found["data"]["training"]["files"] == 2
    assert (repo / "models" / job / "model.joblib").is_file()
    written = json.loads((repo / "models" / job / "output/metrics.json").read_text())
    assert written["rmse"] == pytest.approx(found["metrics"]["rmse"], abs=1e-5)
    assert not (repo / EXAMPLE / "data/train").exists()  # no data step of ours ran in their data folder

    # Their image knows nothing of MLflow: the job is a run all the same, written from its record and log.
    run = tracked(repo, job)
    assert run.info.status == "FINISHED" and run.data.params["alpha"] == "0.5"
    assert {k: run.data.metrics[k] for k in ("rmse", "mae", "r2")} == pytest.approx(found["metrics"])
    assert "train_rmse" not in run.data.metrics  # not declared: not recorded, as the job's own record says
    assert run.data.tags["sagemake.data.training"] == found["data"]["training"]["digest"]

    jobs = make(repo, "jobs", BYO)
    assert jobs.stdout.splitlines()[0].split() == ["JOB", "STATUS", "DURATION", "BILLABLE", "COST", "SPOT", "SAVED",
                                                   "rmse"]


def test_its_own_hyperparameter_errors_fail_the_job_with_its_reason(repo):
    result = make(repo, "train", BYO, "HP=colour=red")
    assert result.returncode != 0
    assert "Failed: AlgorithmError: ValueError: unknown hyperparameter(s) colour (known: " in result.stderr
    failed = tracked(repo, latest(repo))
    assert failed.info.status == "FAILED" and "unknown hyperparameter(s) colour" in failed.data.tags[
        "sagemake.failure_reason"]


def test_the_tag_follows_the_files_the_image_is_built_from(repo):
    image = image_of(repo, BYO)
    (repo / EXAMPLE / "README.md").write_text("edited; .dockerignore keeps it out of the context\n")
    assert image_of(repo, BYO) == image
    with (repo / EXAMPLE / "code/model.py").open("a") as handle:
        handle.write("\n# a code change the Dockerfile COPYs from its own folder\n")
    changed = image_of(repo, BYO)
    assert changed != image
    subprocess.run([ENGINE, "rmi", "-f", changed], capture_output=True)  # from an earlier run of this test
    result = make(repo, "build", BYO)
    assert result.returncode == 0, result.stderr
    assert f"build: {changed} (" in result.stderr
    assert subprocess.run([ENGINE, "image", "inspect", image], capture_output=True).returncode == 0  # kept


def test_a_prebuilt_image_runs_as_it_is_with_its_own_entrypoint_or_one_given(repo):
    image = image_of(repo, BYO)
    prebuilt = {k: v for k, v in BYO.items() if k not in ("DOCKERFILE", "BUILD_CONTEXT")} | {"TRAINING_IMAGE": image}
    result = make(repo, "train", prebuilt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"build: {image} is up to date" in result.stderr and "build: " + image + " (" not in result.stderr
    assert manifest(repo, latest(repo))["image"] == image

    given = {**prebuilt, "CONTAINER_ENTRYPOINT": "python3 /opt/ml/code/entry.py", "CONTAINER_ARGUMENTS": "train"}
    result = make(repo, "train", given, "HP=alpha=2")
    assert result.returncode == 0, result.stdout + result.stderr
    request = json.loads((repo / "jobs" / latest(repo) / "request.json").read_text())
    assert request["AlgorithmSpecification"]["ContainerEntrypoint"] == ["python3", "/opt/ml/code/entry.py"]

    missing = make(repo, "train", {**prebuilt, "TRAINING_IMAGE": "nobody/none:1"})
    assert missing.returncode != 0
    assert "TRAINING_IMAGE=nobody/none:1 is not in the docker engine: pull or build it first" in missing.stderr
    process = make(repo, "train", {**prebuilt, "LOCAL_RUNTIME": "process"})
    assert "LOCAL_RUNTIME=process runs only sagemake's own images" in process.stderr


def test_an_image_that_cannot_start_is_refused_and_kept(repo, tmp_path):
    context = tmp_path / "no start"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM python:3.11-slim\nCMD [\"python3\"]\n")
    settings = {**BYO, "DOCKERFILE": str(context / "Dockerfile"), "BUILD_CONTEXT": str(context)}
    result = make(repo, "build", settings)
    assert result.returncode != 0
    assert "has neither an executable 'train' on its PATH nor an ENTRYPOINT" in result.stderr
    kept = image_of(repo, settings) + "-unchecked"
    assert subprocess.run([ENGINE, "image", "inspect", kept], capture_output=True).returncode == 0  # not deleted
    subprocess.run([ENGINE, "rmi", kept], capture_output=True)


def test_a_prebuilt_image_not_in_ecr_is_refused_before_anything_is_sent(aws, tmp_path):
    from emulator import client

    repo = copy_repo(tmp_path / "prod")
    make_bucket()
    absent = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/trainer:1.4"
    env = {"ENV": "prod", **settings(), **{k: v for k, v in BYO.items() if k not in ("DOCKERFILE", "BUILD_CONTEXT")},
           "TRAINING_IMAGE": absent}
    result = make(repo, "train", env)
    assert result.returncode != 0
    assert f"image {absent} is not in ECR: set TRAINING_IMAGE to an image that is there" in result.stderr
    assert client("s3").list_objects_v2(Bucket="train-bucket")["KeyCount"] == 0  # nothing uploaded
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    hub = make(repo, "train", {**env, "TRAINING_IMAGE": "my-team/trainer:1.4"})
    assert "is not in an ECR registry, where SageMaker pulls images from" in hub.stderr


def test_bad_hyperparameters_stop_ENV_prod_before_anything_is_built_or_uploaded(aws, tmp_path):
    from emulator import client

    repo = copy_repo(tmp_path / "prod")
    make_bucket()
    result = make(repo, "train", {"ENV": "prod", **settings()}, "HP=max_depth=deep")
    assert result.returncode != 0
    assert "hyperparameter max_depth='deep': input should be a valid integer" in result.stderr
    assert "build:" not in result.stderr and "upload:" not in result.stderr
    assert client("ecr").describe_repositories()["repositories"] == []
    assert client("s3").list_objects_v2(Bucket="train-bucket")["KeyCount"] == 0


OWN = {"DOCKERFILE": "docker/Dockerfile.mine", "DATA_DIR": f"{EXAMPLE}/data", "CHANNELS": "training",
       "METRICS": "rmse:min", "LOCAL_RUNTIME": "auto"}


def test_a_copied_file_the_ignore_file_keeps_out_is_refused_before_building(podman, tmp_path):  # noqa: F811
    """Their own Dockerfile, in docker/ beside sagemake's, with the default build context (the repository, whose
    .dockerignore lets in only what sagemake's image copies): what it copies is checked against the context the
    engine receives before anything is built, and the fix the line names works (podman and BuildKit read
    <Dockerfile>.dockerignore; docker's legacy builder does not, and is told so)."""
    repo = copy_repo(tmp_path / "own dockerfile")
    shutil.copytree(repo / EXAMPLE / "code", repo / "mymodel")
    (repo / "docker/Dockerfile.mine").write_text(
        "FROM python:3.11-slim\n\n# their model\nCOPY mymodel/ /opt/ml/code/\n"
        'ENTRYPOINT ["python3", "/opt/ml/code/entry.py"]\n')
    fixes = ("set BUILD_CONTEXT to the folder your Dockerfile copies from, or {}write "
             "docker/Dockerfile.mine.dockerignore beside it ")
    for name, env in (("docker", {"DOCKER_BUILDKIT": "0"}), ("podman", {})):
        refused = make(repo, "build", {**OWN, **env, "CONTAINER_ENGINE": name})
        assert refused.returncode != 0
        [line] = [said for said in refused.stderr.splitlines() if said.startswith("sagemake:")]
        assert line.startswith("sagemake: docker/Dockerfile.mine line 4: COPY mymodel is left out of the build "
                               "context by .dockerignore line 3 (*): " + fixes.format(
                                   "install docker's buildx plugin and " if name == "docker" else "")), line
        assert "build: " not in refused.stderr  # nothing built

    (repo / "docker/Dockerfile.mine.dockerignore").write_text("*\n")
    theirs = make(repo, "build", {**OWN, "CONTAINER_ENGINE": "podman"})
    assert ("by docker/Dockerfile.mine.dockerignore line 1 (*): add the line !mymodel to "
            "docker/Dockerfile.mine.dockerignore, or set BUILD_CONTEXT") in theirs.stderr
    (repo / "docker/Dockerfile.mine.dockerignore").write_text("*\n!mymodel/\n")
    legacy = make(repo, "build", {**OWN, "DOCKER_BUILDKIT": "0"})
    assert "docker's legacy builder, used without buildx, reads only .dockerignore" in legacy.stderr
    podman_own = {**OWN, "CONTAINER_ENGINE": "podman"}
    image = image_of(repo, podman_own)
    built = make(repo, "build", podman_own)
    assert built.returncode == 0, built.stderr
    with (repo / "mymodel/model.py").open("a") as handle:
        handle.write("\n# their change\n")
    assert image_of(repo, podman_own) != image  # the tag follows the files the engine now receives
    subprocess.run(["podman", "rmi", "-f", image], capture_output=True)


def test_a_trainer_with_its_own_requirements_gets_sagemakes_from_sagemakes_file(engine, tmp_path):  # noqa: F811
    """examples/regression's trainer in sagemake's image, docker/requirements.txt its own (scikit-learn, nothing of
    sagemake's): the image has pydantic (train) and granian (serve) all the same, from
    docker/requirements-sagemake.txt. A module the trainer imports that its requirements lack is named in one line
    once the image is built, before it is tagged or anything runs."""
    repo = copy_repo(tmp_path / "regression", trainer=CHECKOUT / "examples/regression/trainer")
    shutil.copy(CHECKOUT / "examples/regression/requirements.txt", repo / "docker/requirements.txt")
    train = repo / "src/trainer/train.py"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join([*lines[:12], "import yaml\n", *lines[12:]]))
    env = {"LOCAL_RUNTIME": "container"}
    image = image_of(repo, env)
    subprocess.run([ENGINE, "rmi", "-f", image], capture_output=True)  # built here (an earlier run may have tagged it)
    refused = make(repo, "build", env)
    assert refused.returncode != 0
    [line] = [said for said in refused.stderr.splitlines() if said.startswith("sagemake:")]
    assert line == (f"sagemake: src/trainer/train.py line 13 imports yaml, which image {image}-unchecked lacks: "
                    "add the package that provides it to docker/requirements.txt")
    assert subprocess.run([ENGINE, "image", "inspect", image], capture_output=True).returncode != 0  # not tagged
    subprocess.run([ENGINE, "rmi", f"{image}-unchecked"], capture_output=True)

    train.write_text("".join(lines))
    trained = make(repo, "train", env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "runtime container (docker, image" in trained.stderr
    assert "validation:rmse=" in trained.stdout
    found = subprocess.run([ENGINE, "run", "--rm", *FLAGS.split(), "--entrypoint", "python", image_of(repo, env),
                            "-c", "import granian.server.mp, pydantic, matplotlib"], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
