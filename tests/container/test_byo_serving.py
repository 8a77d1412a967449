"""A serving image that is not ours: examples/byo-serving, written from AWS's documented contract alone (nginx on
port 8080 in front of gunicorn and flask, `train` and `serve` on PATH, no capability label, no sagemake code),
trained, served, asked for predictions and batch-transformed by settings alone, in a real engine.

Its container is reached on its port 8080, to which a free port of this machine is mapped: the engine must publish
ports (tests/container_engine.sh gives it a bridge of its own), so these tests run the containers without
TEST_CONTAINER_FLAGS' --network host; the build, which fetches packages, keeps them. Skipped without an engine
that can, unless REQUIRE_CONTAINER_TESTS=1.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import copy_repo, sagemake
from test_container import ENGINE, FLAGS, REQUIRED, engine, image_of, make  # noqa: F401 - engine is a fixture
from test_serve import ctrl_c_at_every_step, free_port, started_serve

from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local.serving import BIND_LABEL, ServerFailed, ServingContainer, serving_runtime

EXAMPLE = "examples/byo-serving"
DATA = Path(__file__).parents[2] / EXAMPLE / "data/training"
# Its own Dockerfile and data; the containers on the engine's bridge, reached through a published port.
BYO = {"DOCKERFILE": f"{EXAMPLE}/Dockerfile", "BUILD_CONTEXT": EXAMPLE, "DATA_DIR": f"{EXAMPLE}/data",
       "CHANNELS": "training", "METRICS": "accuracy:max", "LOCAL_RUNTIME": "auto", "CONTAINER_BUILD_FLAGS": FLAGS,
       "CONTAINER_RUN_FLAGS": ""}


@pytest.fixture(scope="module")
def publishes(engine):  # noqa: F811 - the fixture imported above
    """The engine maps a port of this machine to a container's (it has a bridge network)."""
    subnet = subprocess.run([ENGINE, "network", "inspect", "bridge", "--format",
                             "{{range .IPAM.Config}}{{.Subnet}}{{end}}"], capture_output=True, text=True).stdout
    if not subnet.strip():
        message = f"the {ENGINE} engine has no bridge network: it cannot publish a container's port"
        if REQUIRED:
            pytest.fail(f"REQUIRE_CONTAINER_TESTS=1 but {message}")
        pytest.skip(message)
    return ENGINE


def latest(repo: Path) -> str:
    return max((p for p in (repo / "jobs").iterdir() if (p / "job.json").is_file()), key=lambda p: p.name).name


def manifest(repo: Path, job: str) -> dict:
    return json.loads((repo / "models" / job / "manifest.json").read_text())


@pytest.fixture(scope="module")
def trained(publishes, tmp_path_factory):
    """A checkout that built the example's image from its own Dockerfile and trained it: (repo, job, image)."""
    repo = copy_repo(tmp_path_factory.mktemp("byo serving") / "my project")
    built = make(repo, "build", BYO)
    assert built.returncode == 0, built.stdout + built.stderr
    result = make(repo, "train", BYO, "HP=max_depth=3")
    assert result.returncode == 0, result.stdout + result.stderr
    job = latest(repo)
    assert manifest(repo, job)["sagemake_image"] is False
    return repo, job, image_of(repo, BYO)


def features() -> list[list[str]]:
    """The example's rows without their class (the first column), as they are written."""
    return [line.split(",")[1:] for path in sorted(DATA.glob("*.csv")) for line in path.read_text().splitlines()]


def expected(repo: Path, job: str, rows: list[list[str]]) -> list[int]:
    """The model's own predictions (joblib, not through any server)."""
    model = joblib.load(repo / "models" / job / "model.joblib")
    return [int(label) for label in model.predict(np.array(rows, dtype=float))]


def settings_only(extra: dict | None = None) -> dict:
    """sagemake's default image settings (no DOCKERFILE, no TRAINING_IMAGE): only the model's manifest names the
    image that serves it."""
    return {"LOCAL_RUNTIME": "auto", "CONTAINER_RUN_FLAGS": "", **(extra or {})}


def test_make_predict_and_transform_reach_its_port_8080(trained, tmp_path):
    """Its server listens on 8080 alone: make predict and make transform map a free port to it and set no
    SAGEMAKER_BIND_TO_PORT (they set it to a free port and waited 120 s for nothing)."""
    repo, job, image = trained
    rows = features()
    (tmp_path / "rows.csv").write_text("".join(",".join(row) + "\n" for row in rows))
    result = make(repo, "predict", settings_only(), f"FILE={tmp_path / 'rows.csv'}", f"JOB={job}")
    assert result.returncode == 0, result.stderr
    assert f"runtime container (docker, image {image}): the engine has the image" in result.stderr
    assert [int(line) for line in result.stdout.split()] == expected(repo, job, rows)

    inputs = tmp_path / "inputs"
    (inputs / "more").mkdir(parents=True)
    (inputs / "a.csv").write_text("".join(",".join(row) + "\n" for row in rows[:100]))
    (inputs / "more/b.csv").write_text("".join(",".join(row) + "\n" for row in rows[100:]))
    result = make(repo, "transform", settings_only(), f"INPUT={inputs}", f"JOB={job}")
    assert result.returncode == 0, result.stderr
    (output,) = (repo / "jobs").glob("*-batch-*/output")
    answered = [int(line) for name in ("a.csv.out", "more/b.csv.out") for line in (output / name).read_text().split()]
    assert answered == expected(repo, job, rows)


def test_a_model_trained_with_training_image_is_served_by_that_image_without_repeating_it(trained, tmp_path):
    repo, _, image = trained
    prebuilt = {k: v for k, v in BYO.items() if k not in ("DOCKERFILE", "BUILD_CONTEXT")} | {"TRAINING_IMAGE": image}
    result = make(repo, "train", prebuilt)
    assert result.returncode == 0, result.stdout + result.stderr
    job = latest(repo)
    assert manifest(repo, job)["image"] == image and manifest(repo, job)["sagemake_image"] is False
    rows = features()[:20]
    (tmp_path / "rows.csv").write_text("".join(",".join(row) + "\n" for row in rows))
    result = make(repo, "predict", settings_only(), f"FILE={tmp_path / 'rows.csv'}", f"JOB={job}")
    assert result.returncode == 0, result.stderr
    assert f"runtime container (docker, image {image})" in result.stderr
    assert [int(line) for line in result.stdout.split()] == expected(repo, job, rows)
    # A process never stands in for an image that is not sagemake's, nor is it suggested.
    result = make(repo, "predict", settings_only({"LOCAL_RUNTIME": "process"}), f"FILE={tmp_path / 'rows.csv'}",
                  f"JOB={job}")
    assert result.returncode == 2
    assert f"sagemake: LOCAL_RUNTIME=process serves only models of sagemake's own image, and the model of {job} " \
           f"was trained with image {image}, not sagemake's: serve it in a container with LOCAL_RUNTIME=auto or " \
           "container" in result.stderr


UNCAPTURED = {"CAPTURE_PERCENT": "0"}  # the container on SERVE_PORT itself, no capturing proxy in front


def containers(port: int) -> list[str]:
    """The engine's serving containers for this port (sagemake-serve-<pid>-<port>), running or not."""
    listed = subprocess.run([ENGINE, "ps", "--all", "--format", "{{.Names}}", "--filter",
                             f"name=^sagemake-serve-[0-9]+-{port}$"], capture_output=True, text=True, check=True)
    return listed.stdout.split()


def listed(repo: Path) -> str:
    result = subprocess.run([*sagemake(repo), "endpoints"], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, **settings_only()})
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_make_serve_maps_a_port_to_8080_and_endpoints_lists_it_only_while_it_runs(trained):
    """SERVE_PORT mapped to the container's 8080 (without capture: with it, the capturing proxy takes SERVE_PORT and
    the container another free port)."""
    repo, job, image = trained
    port = free_port()
    serving, _ = started_serve(repo, port, settings_only(UNCAPTURED), f"JOB={job}")
    try:
        (name,) = containers(port)
        inspected = json.loads(subprocess.run([ENGINE, "inspect", name], capture_output=True, text=True,
                                              check=True).stdout)[0]
        assert inspected["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1",
                                                                         "HostPort": str(port)}]}
        assert not any(v.startswith("SAGEMAKER_BIND_TO_PORT=") for v in inspected["Config"]["Env"])
        rows = features()[:5]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data="".join(",".join(r) + "\n" for r in rows).encode(),
                                         headers={"Content-Type": "text/csv"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert [int(line) for line in answer.read().split()] == expected(repo, job, rows)
        assert f"http://127.0.0.1:{port}" in listed(repo)
        os.killpg(serving.pid, signal.SIGINT)  # Ctrl-C in the terminal: make and the target get it
        rest = serving.communicate(timeout=120)[0].decode()
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
    assert "serve: stopped" in rest
    assert containers(port) == []
    assert f"http://127.0.0.1:{port}" not in listed(repo)


def test_kill_9_of_make_serve_stops_its_container_and_endpoints_stops_listing_it(trained):
    repo, job, _ = trained
    port = free_port()
    serving, _ = started_serve(repo, port, settings_only(UNCAPTURED), f"JOB={job}")
    try:
        assert len(containers(port)) == 1
        assert f"http://127.0.0.1:{port}" in listed(repo)
        os.killpg(serving.pid, signal.SIGKILL)  # make and sagemake, at once: only the guard is left to act
        serving.wait()
        deadline = time.monotonic() + 60  # its guard's SIGTERM, and the container's own drain
        while containers(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert containers(port) == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
    assert f"http://127.0.0.1:{port}" not in listed(repo)


def test_ctrl_c_at_any_moment_after_the_first_ping_stops_the_container(trained, monkeypatch):
    """As test_serve's test of the process runtime: a Ctrl-C at each step from the first /ping answer to make
    serve waiting leaves no container and no port behind."""
    repo, job, _ = trained
    config = resolve(root=repo, environ={**settings_only(), "SERVE_PORT": str(free_port())})
    ctrl_c_at_every_step(config, job, monkeypatch)


# --- the label, and what is said when nothing answers -----------------------------------------------------------


@pytest.fixture(scope="module")
def wrong_ports(publishes, tmp_path_factory) -> dict[str, str]:
    """Two images whose server is not where their label says: one without the label listening on 9000, one with
    the label that listens on 8080 whatever SAGEMAKER_BIND_TO_PORT says."""
    made = {}
    for name, label, port in (("no-label", "", "9000"), ("label", f"LABEL {BIND_LABEL}=true\n", "8080")):
        context = tmp_path_factory.mktemp(name)
        (context / "serve").write_text(f"#!/bin/sh\nexec python3 -m http.server {port}\n")
        (context / "serve").chmod(0o755)
        (context / "Dockerfile").write_text(f"FROM python:3.11-slim\n{label}COPY serve /usr/local/bin/serve\n")
        image = f"sagemake-test-{name}:1"
        subprocess.run([ENGINE, "build", "-q", "-t", image, str(context)], check=True, capture_output=True)
        made[name] = image
    return made


def test_the_label_decides_the_port_and_a_silent_server_names_it(trained, wrong_ports, tmp_path):
    repo, job, image = trained
    config = resolve(root=repo, environ=settings_only())
    found = json.loads((repo / "models" / job / "manifest.json").read_text())
    runtime, _ = serving_runtime(config, found)
    assert runtime.binds_to_port is False  # the example declares nothing
    for name, sentence in (
        ("no-label", "on 127.0.0.1:{port}, mapped to port 8080 in the container: image {image} has no label "
                     f"{BIND_LABEL}=true, so it must listen on port 8080, as SageMaker's contract says: make its "
                     "server listen on 0.0.0.0:8080, or give the image the label and listen on "
                     "$SAGEMAKER_BIND_TO_PORT"),
        ("label", "on 127.0.0.1:{port}, mapped to port {port} in the container: image {image} declares "
                  f"{BIND_LABEL}=true, so it was given SAGEMAKER_BIND_TO_PORT={{port}} and must listen there: "
                  "make its server listen on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT, or remove the label and listen on 8080"),
    ):
        runtime, _ = serving_runtime(config, {**found, "image": wrong_ports[name], "sagemake_image": False})
        assert runtime.binds_to_port is (name == "label")
        port = free_port()
        log = tmp_path / f"{name}.log"
        with log.open("wb") as output:
            server = runtime.start([], port, {}, output)
        try:
            with pytest.raises(ServerFailed) as failed:
                server.wait_ready(seconds=15, log=log)  # nothing will ever answer where it is looked for
        finally:
            server.stop()
        said = str(failed.value)
        assert "\n" not in said
        assert said.startswith("the model server did not answer /ping within 15 s "
                               + sentence.format(port=port, image=wrong_ports[name])), said


def test_on_the_hosts_network_an_image_without_the_label_is_on_8080_only(wrong_ports):
    image = wrong_ports["no-label"]
    host = ServingContainer(ENGINE, image, ["--network", "host"], binds_to_port=False)
    fixed = (f"image {image} listens on port 8080 only (it has no label {BIND_LABEL}=true) and CONTAINER_RUN_FLAGS "
             "gives it this machine's network")
    refused = f"SERVE_PORT=9999 cannot be served: {fixed}: serve on SERVE_PORT=8080, or drop --network host from " \
              "CONTAINER_RUN_FLAGS"
    with pytest.raises(UserError, match=f"^{re.escape(refused)}$"):
        host.reserve(9999)
    with socket.socket() as taken:  # 8080 in use (by this test, or whatever else holds it here)
        try:
            taken.bind(("127.0.0.1", 8080))
            taken.listen()
        except OSError:
            pass
        busy = re.escape(f"{fixed}: stop what listens there")
        with pytest.raises(UserError, match=rf"^port 8080 is in use \(.*\): {busy}"):
            host.reserve(None)
    port = free_port()  # an image with the label is given any port, the host's network or not
    assert ServingContainer(ENGINE, image, ["--network", "host"], binds_to_port=True).reserve(port) == port
