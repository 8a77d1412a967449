"""scripts/prepare.sh: private dependencies fetched at a pinned ref and built into wheels, outside any image."""

import base64
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest
from conftest import ROOT, copy_repo, https_server, private_package

VENV = os.environ.get("VENV", str(ROOT / ".venv"))


@pytest.fixture
def repo(tmp_path):
    return copy_repo(tmp_path / "my project")


def prepare(repo, deps, **env):
    everything = {**os.environ, "VENV": VENV if os.path.isabs(VENV) else str(ROOT / VENV),
                  "PRIVATE_DEPS": deps, **env}
    return subprocess.run([str(repo / "scripts/prepare.sh")], env=everything, capture_output=True, text=True,
                          timeout=300)


def test_a_pinned_dependency_becomes_a_wheel_listed_for_the_image(repo, tmp_path):
    package = private_package(tmp_path / "features")
    result = prepare(repo, f"file://{package}@v1.0.0")
    assert result.returncode == 0, result.stderr
    wheels = repo / "build/wheels"
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith("acme_features-1.0.0-")
    assert (wheels / "private.txt").read_text() == f"/opt/program/wheels/{wheel.name}\n"
    assert "acme_features/__init__.py" in zipfile.ZipFile(wheel).namelist()
    assert not [p for p in wheels.rglob("*") if ".git" in p.parts]
    first = wheel.read_bytes()

    again = prepare(repo, f"file://{package}@v1.0.0")
    assert "build/wheels/ is up to date" in again.stderr
    (wheels / "pinned.txt").unlink()  # forces a rebuild: the same ref gives the same bytes
    assert prepare(repo, f"file://{package}@v1.0.0").returncode == 0
    assert next(wheels.glob("*.whl")).read_bytes() == first


def test_a_ref_that_does_not_exist_is_named_and_nothing_is_replaced(repo, tmp_path):
    package = private_package(tmp_path / "features")
    assert prepare(repo, f"file://{package}@v1.0.0").returncode == 0
    before = sorted(p.name for p in (repo / "build/wheels").iterdir())
    result = prepare(repo, f"file://{package}@v9.9.9")
    assert result.returncode != 0
    assert f"cannot fetch v9.9.9 from file://{package}: check that the repository and the ref exist" in result.stderr
    assert sorted(p.name for p in (repo / "build/wheels").iterdir()) == before


def test_a_repository_that_cannot_be_cloned_is_named(repo, tmp_path):
    result = prepare(repo, f"file://{tmp_path}/nowhere.git@v1")
    assert result.returncode != 0
    assert f"cannot fetch v1 from file://{tmp_path}/nowhere.git" in result.stderr


@pytest.mark.parametrize("dep", ["git@github.com:acme/features.git", "https://example.com/acme/features.git"])
def test_an_unpinned_dependency_is_refused(repo, dep):
    result = prepare(repo, dep)
    assert result.returncode != 0
    assert f"PRIVATE_DEPS: '{dep}' is not URL@REF: pin it to a tag or commit" in result.stderr


def test_a_short_commit_hash_is_refused_before_fetching(repo, tmp_path):
    result = prepare(repo, f"file://{tmp_path}/features.git@3f2c1ab")
    assert result.returncode != 0
    assert "'3f2c1ab' looks like a short commit hash" in result.stderr


class Recorder(http.server.BaseHTTPRequestHandler):
    """A git host that records each request's Authorization header and has no repository."""

    seen: list = []

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_https_token_goes_in_a_header_and_never_in_the_output(repo, tmp_path):
    recorder = type("Host", (Recorder,), {"seen": []})
    token = "ghs_s3cr3tT0ken"
    with https_server(recorder, tmp_path) as (url, cert):
        result = prepare(repo, f"{url}/acme/features.git@v1", GIT_HTTPS_TOKEN=token, GIT_SSL_CAINFO=str(cert),
                         DEBUG="1")  # even traced
    assert result.returncode != 0
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert recorder.seen and recorder.seen[0] == expected
    assert "+ " in result.stderr  # the trace is on
    assert token not in result.stdout + result.stderr and expected.split()[1] not in result.stderr
    assert f"cannot fetch v1 from {url}/acme/features.git" in result.stderr


@pytest.mark.parametrize("scheme", ["http", "HTTP"])
def test_the_token_is_never_sent_over_plain_http(repo, scheme):
    """Plain http:// would carry the token readable by anyone on the way: with GIT_HTTPS_TOKEN set, such a URL is
    refused in one line before anything is fetched."""
    recorder = type("Host", (Recorder,), {"seen": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"{scheme}://127.0.0.1:{server.server_port}/acme/features.git"
    try:
        result = prepare(repo, f"{url}@v1", GIT_HTTPS_TOKEN="ghs_s3cr3tT0ken")
    finally:
        server.shutdown()
    assert result.returncode != 0
    assert recorder.seen == []
    assert result.stderr.strip().splitlines()[-1] == (
        f"prepare.sh: PRIVATE_DEPS: {url} is plain http://, which would carry GIT_HTTPS_TOKEN unencrypted: use its "
        "https:// URL")
    assert not (repo / "build/wheels").exists()


def test_the_jobs_python_has_the_private_wheels_and_is_made_once(repo, tmp_path, monkeypatch):
    """The job's Python (local process jobs, the data step): the image's requirements and its private wheels, in
    the tool's virtualenv, made once per change of them. Here the image has no public requirements, so it takes
    seconds, and the tool's virtualenv is this test's own: the suite's job's Python stays as it is."""
    from sagemake.config import resolve
    from sagemake.job_python import JOB_PYTHON, job_python

    (repo / "docker/requirements.txt").unlink()
    (repo / "docker/requirements-sagemake.txt").unlink()
    shutil.rmtree(repo / "src/trainer")  # no trainer whose imports would need them
    tool = tmp_path / "tool venv"
    monkeypatch.setattr(sys, "prefix", str(tool))
    package = private_package(tmp_path / "features")
    monkeypatch.setenv("VENV", VENV if os.path.isabs(VENV) else str(ROOT / VENV))  # prepare.sh's Python
    monkeypatch.setenv("PRIVATE_DEPS", f"file://{package}@v1.0.0")  # prepare.sh reads it from the environment
    config = resolve(root=repo, environ={"PRIVATE_DEPS": f"file://{package}@v1.0.0"})
    python = job_python(config)
    assert python.parents[2] == tool / JOB_PYTHON
    assert job_python(config) == python  # made once
    found = subprocess.run([str(python), "-c", "import acme_features; print(acme_features.VERSION)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "1.0.0"
