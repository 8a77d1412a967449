"""The real image with a real engine: built from docker/Dockerfile, run by the local executor,
pushed to a real registry standing in for ECR's.

They run wherever an engine answers (a laptop with Docker, CircleCI). Without
one they are skipped, unless REQUIRE_CONTAINER_TESTS=1 (as .ci/run sets after
starting an engine), where a missing engine fails them. TEST_CONTAINER_FLAGS
holds extra engine flags the machine needs (e.g. --network host); TEST_REGISTRY
a registry's host:port.
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import copy_repo, https_server, private_package, sagemake, tool_venv
from emulator import SageMakerDriver, make_bucket, settings
from test_secrets import FAKE, leaks, scan_image, scan_tree

ENGINE = "docker"
REQUIRED = os.environ.get("REQUIRE_CONTAINER_TESTS") == "1"
FLAGS = os.environ.get("TEST_CONTAINER_FLAGS", "")
TOKEN = "ghs_n0tInAnyLayer"


def engine_answers() -> bool:
    try:
        return subprocess.run([ENGINE, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def engine():
    if not engine_answers():
        message = f"no {ENGINE} engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')})"
        if REQUIRED:
            pytest.fail(f"REQUIRE_CONTAINER_TESTS=1 but {message}")
        pytest.skip(message)
    return ENGINE


@pytest.fixture(scope="module")
def registry(engine):
    address = os.environ.get("TEST_REGISTRY")
    if not address:
        if REQUIRED:
            pytest.fail("REQUIRE_CONTAINER_TESTS=1 but TEST_REGISTRY is not set")
        pytest.skip("no TEST_REGISTRY")
    return address


class PrivateGit(http.server.BaseHTTPRequestHandler):
    """A private git host: git's smart HTTP protocol (git http-backend) for the repositories under `root`, to a
    request that carries the token as prepare.sh sends it, 401 to any other."""

    root = None
    token = ""
    seen: list = []

    def do_GET(self):  # noqa: N802 - the names http.server calls
        self.serve()

    def do_POST(self):  # noqa: N802
        self.serve()

    def serve(self):
        expected = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        self.seen.append(self.headers.get("Authorization") == expected)
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "ci",
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        answer = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60).stdout
        head, _, payload = answer.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def private_host(tmp_path_factory):
    """The private dependency acme_features, tagged v1.0.0, behind PrivateGit on 127.0.0.1 over HTTPS: its URL, the
    host's certificate and the list of whether each request carried the token."""
    base = tmp_path_factory.mktemp("private host")
    package = private_package(base / "features")
    subprocess.run(["git", "clone", "-q", "--bare", str(package), str(base / "repos/acme/features.git")], check=True)
    handler = type("Host", (PrivateGit,), {"root": base / "repos", "token": FAKE["GIT_HTTPS_TOKEN"], "seen": []})
    with https_server(handler, base) as (url, cert):
        yield f"{url}/acme/features.git", cert, handler.seen


@pytest.fixture(scope="module")
def project(engine, private_host, tmp_path_factory, example_data):
    """A checkout with a private dependency fetched over HTTPS with GIT_HTTPS_TOKEN, its image built once for the
    module, traced (DEBUG=1), with the fake credentials of test_secrets in the environment. Its data/ holds the
    example's channels already: the data step, run by the job's Python, would make one with this checkout's private
    wheel, a minute of its own that the container tests do not need (test_prepare.py makes one, small)."""
    url, cert, seen = private_host
    repo = copy_repo(tmp_path_factory.mktemp("container") / "my project")
    shutil.copytree(example_data, repo / "data")
    env = {"PRIVATE_DEPS": f"{url}@v1.0.0", "GIT_SSL_CAINFO": str(cert), "LOCAL_RUNTIME": "container", **FAKE}
    result = make(repo, "build", {**env, "DEBUG": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert seen and all(seen)  # the dependency came with the token, in a header
    assert "+ prepare.sh:" in result.stderr and "+ sagemake.run: docker build " in result.stderr  # traced
    assert leaks(result.stdout + result.stderr) == []
    return repo, env


@pytest.fixture(scope="module")
def built_project(engine, tmp_path_factory):
    """A copy of the checkout with sagemake's own image (no private dependency) built in the engine, and the
    environment that runs it there (this checkout's virtualenv: none is made for the copy). Each module that uses it
    has a copy of its own; the image is tagged by content, so the first copy builds it and the others find it up to
    date."""
    repo = copy_repo(tmp_path_factory.mktemp("built") / "my project")
    env = {**os.environ, "LOCAL_RUNTIME": "container", "CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": FLAGS,
           "VENV": tool_venv()}
    built = subprocess.run(["make", "-s", "build"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    return repo, env


def containers(name) -> list[str]:
    """The engine's containers named name, running or not."""
    listed = subprocess.run([ENGINE, "ps", "--all", "--quiet", "--filter", f"name=^{name}$"], capture_output=True,
                            text=True, check=True)
    return listed.stdout.split()


def make(repo, target, env, *args):
    everything = {**os.environ, "VENV": tool_venv(), "CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": FLAGS,
                  "GIT_HTTPS_TOKEN": TOKEN, **env}
    return subprocess.run(["make", "-s", target, *args], cwd=repo, env=everything, capture_output=True, text=True,
                          timeout=900)


def image_of(repo, env) -> str:
    return subprocess.run([*sagemake(repo), "image"], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def in_image(image, *command) -> str:
    flags = FLAGS.split()
    return subprocess.run([ENGINE, "run", "--rm", *flags, "--entrypoint", command[0], image, *command[1:]],
                          capture_output=True, text=True, check=True).stdout


def registry_tags(registry, repository) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list") as answer:
            return json.load(answer).get("tags") or []
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return []
        raise


def test_the_image_has_train_the_private_wheel_and_no_secrets(project):
    repo, env = project
    image = image_of(repo, env)
    again = make(repo, "build", env)
    assert f"build: {image} is up to date" in again.stderr
    assert in_image(image, "sh", "-c", "command -v train").strip() == "/usr/local/bin/train"
    assert in_image(image, "python", "-c", "import acme_features; print(acme_features.VERSION)").strip() == "1.0.0"
    assert in_image(image, "sh", "-c", "find / -xdev -name .git -print") == ""
    # Tools that run an image's CMD (the SDK's local mode) start training too.
    cmd = subprocess.run([ENGINE, "image", "inspect", "--format", "{{json .Config.Cmd}}", image],
                         capture_output=True, text=True).stdout
    assert json.loads(cmd) == ["train"]


def test_no_credential_in_any_layer_of_the_image_nor_in_build(project, tmp_path):
    """Built with AWS keys, a session token and GIT_HTTPS_TOKEN in the environment (the token used to fetch the
    private dependency): none is in any file of any layer, in the image's config or history, or under build/."""
    repo, env = project
    files, found = scan_image(ENGINE, image_of(repo, env), tmp_path)
    assert files > 1000 and found == {}, found  # the scan saw the image's files: it cannot pass on an empty tar
    files, found = scan_tree(repo / "build")
    assert files >= 3 and found == {}, found  # the wheel, private.txt, pinned.txt


def test_make_train_runs_the_image_under_the_local_executor(project):
    repo, env = project
    result = make(repo, "train", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime container (docker, image" in result.stderr
    assert "data: data/ has channels train, validation: used as they are" in result.stderr
    (job,) = [p.name for p in (repo / "models").iterdir()]
    manifest = json.loads((repo / "models" / job / "manifest.json").read_text())
    assert manifest["runtime"] == "container" and manifest["image"] == image_of(repo, env)
    assert manifest["metrics"]["validation:roc_auc"] > 0.95
    assert (repo / "models" / job / "model.joblib").is_file()
    # What the container saved in /opt/ml/checkpoints is kept apart from the job's folder, for CHECKPOINT_FROM.
    assert (repo / "jobs/checkpoints" / job / "checkpoint.joblib").is_file()


def test_max_runtime_stops_the_container(project):
    repo, env = project
    result = make(repo, "train", {**env, "MAX_RUNTIME_SECONDS": "4", "STOP_GRACE_SECONDS": "60"},
                  "HP=n_estimators=5000 learning_rate=0.001")
    assert result.returncode != 0
    assert "Stopped: MaxRuntimeExceeded" in result.stderr
    jobs = sorted((repo / "jobs").iterdir())
    record = json.loads((jobs[-1] / "job.json").read_text())
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert record["TrainingTimeInSeconds"] < 60  # train obeyed SIGTERM: no SIGKILL was needed


def prod(registry, **extra):
    return {"ENV": "prod", **settings(IMAGE_REGISTRY=registry), **extra}


def test_make_train_env_prod_pushes_to_a_real_registry(project, registry, aws, trained_model):
    """End to end: the image built and pushed to a real registry (in place of ECR's), the AWS side emulated."""
    repo, env = project
    make_bucket()
    prod_env = {**env, **prod(registry)}
    with SageMakerDriver(model=trained_model) as driver:
        result = make(repo, "train", prod_env)
    assert result.returncode == 0, result.stdout + result.stderr
    image = image_of(repo, prod_env)
    assert f"push: {image}" in result.stderr
    assert image.rsplit(":", 1)[1] in registry_tags(registry, "train-image")
    assert driver.job.algorithm_specification["TrainingImage"] == image  # the job runs what was pushed
    assert "Completed / Completed" in result.stderr
    assert (repo / "models" / driver.job.training_job_name / "manifest.json").is_file()


def without_train(dockerfile: str) -> str:
    """The Dockerfile without docker/train in its COPY lines (a line left with nothing to copy goes)."""
    lines = []
    for line in dockerfile.splitlines(keepends=True):
        words = line.split()
        if words[:1] == ["COPY"] and "docker/train" in words:
            words.remove("docker/train")
            line = " ".join(words) + "\n" if len(words) > 2 else ""
        lines.append(line)
    return "".join(lines)


def test_an_image_without_train_is_never_pushed(engine, registry, aws, tmp_path):
    repo = copy_repo(tmp_path / "no train")
    dockerfile = repo / "docker/Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(without_train(text))
    assert dockerfile.read_text() != text
    repository = f"no-train-{os.getpid()}"  # this run's own: the registry outlives the run
    env = prod(registry, ECR_REPOSITORY=repository)
    image = image_of(repo, env)
    result = make(repo, "build", env)
    assert result.returncode != 0
    assert f"image {image}-unchecked has neither an executable 'train' on its PATH nor an ENTRYPOINT" in result.stderr
    assert registry_tags(registry, repository) == []
    # Refused, never deleted (kept under a name that says so), and never under its content tag: the next build
    # does not take it for a good one; it builds again, is refused again, and pushes nothing.
    assert subprocess.run([ENGINE, "image", "inspect", f"{image}-unchecked"], capture_output=True).returncode == 0
    assert subprocess.run([ENGINE, "image", "inspect", image], capture_output=True).returncode != 0
    again = make(repo, "build", env)
    assert again.returncode != 0
    assert "has neither an executable 'train' on its PATH nor an ENTRYPOINT" in again.stderr
    assert f"push: {image}" not in again.stderr
    assert registry_tags(registry, repository) == []
    subprocess.run([ENGINE, "rmi", f"{image}-unchecked"], capture_output=True)  # made by this test


def test_a_failing_build_shows_the_step_and_pushes_nothing(engine, registry, aws, tmp_path):
    repo = copy_repo(tmp_path / "broken")
    dockerfile = repo / "docker/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "WORKDIR /opt/program", "RUN echo 'compiling the features' && exit 3\nWORKDIR /opt/program"))
    env = prod(registry, ECR_REPOSITORY="broken")
    result = make(repo, "build", env)
    assert result.returncode != 0
    assert "compiling the features" in result.stdout + result.stderr
    assert "the image build failed at the step shown above" in result.stderr
    assert registry_tags(registry, "broken") == []


def test_script_mode_runs_the_code_through_sagemakers_toolkit(engine, tmp_path):
    repo = copy_repo(tmp_path / "script mode")
    env = {"CODE_MODE": "script", "LOCAL_RUNTIME": "container", **FAKE}
    subprocess.run([ENGINE, "rmi", "-f", image_of(repo, env)], capture_output=True)  # built here, from scratch
    built = make(repo, "build", env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "docker/Dockerfile.script" in built.stderr
    image = image_of(repo, env)
    files, found = scan_image(ENGINE, image, tmp_path)  # built with the fake credentials in the environment
    assert files > 1000 and found == {}, found
    first = make(repo, "train", env, "HP=n_estimators=20")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "sagemaker-training-toolkit INFO     Reporting training SUCCESS" in first.stdout
    assert "validation:roc_auc=" in first.stdout

    # A code-only change: the same image, new code beside it.
    with (repo / "src/trainer/train.py").open("a") as handle:
        handle.write("\nprint('code changed, image kept', flush=True)\n")
    assert image_of(repo, env) == image
    second = make(repo, "train", env, "HP=n_estimators=20")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"build: {image} is up to date" in second.stderr
    assert "code changed, image kept" in second.stdout
    assert len(list((repo / "jobs/code").iterdir())) == 2

    # SIGTERM (here MaxRuntime's) reaches the code through the toolkit, long before the grace runs out.
    stopped = make(repo, "train", {**env, "MAX_RUNTIME_SECONDS": "8", "STOP_GRACE_SECONDS": "90"},
                   "HP=n_estimators=5000 learning_rate=0.001")
    assert stopped.returncode != 0
    assert "train: stopped by SIGTERM" in stopped.stdout + stopped.stderr
    record = json.loads(max((repo / "jobs").glob("*/job.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert record["TrainingTimeInSeconds"] < 60  # the code obeyed SIGTERM: the 90 s grace never ran out


@pytest.fixture(scope="module")
def podman(engine):
    try:
        answers = subprocess.run(["podman", "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        answers = False
    if not answers:
        if REQUIRED:
            pytest.fail("REQUIRE_CONTAINER_TESTS=1 but podman does not answer (tests/container_engine.sh sets it up)")
        pytest.skip("podman does not answer")
    return "podman"


def test_podman_builds_runs_and_pushes_the_image(podman, registry, aws, tmp_path, trained_model):
    repo = copy_repo(tmp_path / "with podman")
    local = {"CONTAINER_ENGINE": "podman", "LOCAL_RUNTIME": "container"}
    result = make(repo, "train", {**local, "HP": "n_estimators=20"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime container (podman, image" in result.stderr
    assert "validation:roc_auc=" in result.stdout

    make_bucket()
    prod_env = {**local, **prod(registry, ECR_REPOSITORY="with-podman")}
    pushed = make(repo, "build", prod_env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert image_of(repo, prod_env).rsplit(":", 1)[1] in registry_tags(registry, "with-podman")
