"""Shared fixtures: src/ importable, the fixture trainer in place of the checkout's, the example data written once
per session; the tiers' markers.

sagemake's tests never train with the checkout's src/trainer/ (the part a user replaces with their own model): they
use tests/fixtures/trainer/, sagemake's own test trainer. It is first on sys.path (so `import trainer` is the
fixture's), ROOT is a copy of the checkout made once for the session with the fixture as its src/trainer/ (the
project root of the tests that train or run the scripts in place), and copy_repo puts it in every copy of the
checkout the tests run `make` in. CHECKOUT is the checkout itself; tests/e2e/test_trainer_smoke.py covers its
src/trainer/, whatever it holds.
"""

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
TESTS = CHECKOUT / "tests"
FIXTURE_TRAINER = TESTS / "fixtures" / "trainer"
# The tiers, each a folder of tests/ and a marker; slow marks the tests a fast run leaves out.
TIERS = ("unit", "local", "aws", "container", "e2e")
MARKERS = {
    "unit": "pure functions and plans: no subprocess training, no emulator",
    "local": "the local executor: real local training (process runtime)",
    "aws": "against the moto emulator of AWS",
    "container": "needs a container engine (skipped without one, unless REQUIRE_CONTAINER_TESTS=1)",
    "e2e": "whole-checkout runs: make in a copy of the checkout",
    "slow": "left out of `make test-fast` (a fresh virtualenv, a suite of its own, or minutes of training)",
}

sys.path.insert(0, str(FIXTURE_TRAINER.parent))  # `import trainer` is the fixture's, never the checkout's
# A test module may import another's helpers (test_container's fixtures, ...) wherever its tier is.
sys.path[2:2] = [str(TESTS / tier) for tier in TIERS] + [str(TESTS)]

import trainer.data  # noqa: E402


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config, items):
    """Each test gets its tier's marker from its folder (tests/<tier>/...)."""
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(parts[0])


def tool_venv() -> str:
    """This checkout's virtualenv (VENV, default .venv), as an absolute path: copies of the checkout run with it, so
    none makes its own (the fresh-machine case is tests/e2e/e2e.bats's)."""
    venv = os.environ.get("VENV", str(CHECKOUT / ".venv"))
    return venv if os.path.isabs(venv) else str(CHECKOUT / venv)


def sagemake(root: Path) -> list[str]:
    """The command line of `python -m sagemake` for the project at root, run in root as make runs its targets, with
    this test run's Python (sagemake is installed in it): append the target and its arguments."""
    return ["env", "-C", str(root), sys.executable, "-m", "sagemake"]


def copy_repo(destination: Path, trainer: Path | None = FIXTURE_TRAINER) -> Path:
    """The working tree's tracked and new files, as a user's checkout has them, with trainer (default: the fixture
    trainer) as its src/trainer/; trainer=None keeps the checkout's own."""
    listed = subprocess.run(["git", "-C", str(CHECKOUT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = CHECKOUT / name
        if source.is_file() and not (trainer and name.startswith("src/trainer/")):
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    if trainer:
        shutil.copytree(trainer, destination / "src/trainer", ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def _project() -> Path:
    """The session's project root: a copy of the checkout with the fixture trainer, its .venv this checkout's."""
    folder = Path(tempfile.mkdtemp(prefix="sagemake-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    root = copy_repo(folder / "project")
    (root / ".venv").symlink_to(tool_venv())
    return root


ROOT = _project()


@pytest.fixture(scope="session")
def example_data(tmp_path_factory) -> Path:
    """DATA_DIR with the fixture trainer's train/ and validation/ channels."""
    data = tmp_path_factory.mktemp("data set")
    trainer.data.main(data)
    return data


def sigint_as_a_terminal_gives_it():
    """preexec_fn of a child that a test stops with Ctrl-C: SIGINT back to its default. A test run in the background
    (`make test &`, nohup) ignores SIGINT, and a child inherits that through exec, and would never see the signal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def in_process(root: Path = ROOT):
    """The process runtime with this test run's Python (which has the training requirements)."""
    from sagemake.executors.local.runtimes import ProcessRuntime

    return ProcessRuntime(root, Path(sys.executable))


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's server on 127.0.0.1 (a free port), for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def price_list():
    """The stand-in of the AWS Price List API (moto has none) on 127.0.0.1, for the whole session."""
    from pricing_standin import PriceListStandIn

    with PriceListStandIn() as standin:
        yield standin


@pytest.fixture
def aws(moto_endpoint, price_list, monkeypatch, tmp_path_factory):
    """A clean emulated AWS for one test, reached through AWS_ENDPOINT_URL with dummy credentials; the Price List
    API is the stand-in's, and the price cache a folder of the test's own. SageMaker's names are unique, and a
    training job keeps its MetricDefinitions and its MlflowConfig, as on AWS (emulator.refuse_taken_names,
    keep_metric_definitions, keep_mlflow_config)."""
    import urllib.request

    from emulator import keep_metric_definitions, keep_mlflow_config, refuse_taken_names

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    price_list.reset()
    for name, value in {
        "AWS_ENDPOINT_URL_PRICING": price_list.url,
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    restores = [refuse_taken_names(), keep_metric_definitions(), keep_mlflow_config()]
    yield moto_endpoint
    for restore in reversed(restores):
        restore()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, example_data) -> bytes:
    """A real model.tar.gz from the fixture trainer, as a SageMaker job would upload it."""
    from sagemake.config import resolve
    from sagemake.executors.local.executor import LocalExecutor
    from sagemake.jobs.training import plan

    jobs = tmp_path_factory.mktemp("local")
    config = resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=10",
                                         "JOBS_DIR": str(jobs)})
    executor = LocalExecutor(config)
    request = plan(config, executor)
    executor.run(request, in_process())
    return (jobs / request["TrainingJobName"] / "output/model.tar.gz").read_bytes()


@pytest.fixture(scope="session")
def trained_checkout(tmp_path_factory) -> tuple[Path, str]:
    """A copy of the checkout that trained the fixture trainer with a real `make train` (the process runtime),
    which fetched its model: (the copy, the job's name). One for the session: its users (test_serve.py,
    test_transform.py) read it, or add jobs of their own beside it, and put back whatever else they add."""
    repo = copy_repo(tmp_path_factory.mktemp("serving") / "my project")
    result = subprocess.run(["make", "-s", "train", "HP=n_estimators=20"], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process"}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = [p.name for p in (repo / "models").iterdir()]
    return repo, job


@pytest.fixture(scope="session")
def drift_python() -> Path:
    """The Python of `make drift`'s own virtualenv (VENV-drift, with Evidently), made as make makes it."""
    venv = tool_venv()
    subprocess.run(["make", "-s", "-C", str(CHECKOUT), f"VENV={venv}", f"{venv}-drift/.installed"], check=True,
                   capture_output=True, timeout=1200)
    return Path(f"{venv}-drift") / "bin" / "python"


def private_package(folder: Path, name: str = "acme_features", version: str = "1.0.0") -> Path:
    """A git repository holding a small Python package, tagged v<version>: a private dependency."""
    import subprocess

    (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n')
    (folder / name / "__init__.py").write_text(f'VERSION = "{version}"\n')
    def git(*args):
        subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       check=True, capture_output=True)
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "release")
    git("tag", f"v{version}")
    return folder


@contextlib.contextmanager
def https_server(handler, folder: Path):
    """handler (an http.server handler class) served over HTTPS on 127.0.0.1, with a certificate made for it:
    yields (its https:// base URL, the certificate's file, for git's GIT_SSL_CAINFO)."""
    import http.server
    import ssl
    import threading

    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", cert
    finally:
        server.shutdown()


@contextlib.contextmanager
def mlflow_server(folder: Path, *options: str):
    """MLflow's tracking server (the Python `make ui` makes, installed on first use) on 127.0.0.1 and a free port,
    its store a SQLite file in folder: yields its URL; stopped by its pid (its session, which holds its workers)."""
    import signal
    import socket
    import time
    import urllib.request

    from sagemake.targets.ui import server_environment, server_python

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (folder / "mlflow-server.log").open("wb")
    server = subprocess.Popen([str(server_python(CHECKOUT)), "-m", "mlflow", "server", "--backend-store-uri",
                               f"sqlite:///{folder / 'server.db'}", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", *options], cwd=folder, env=server_environment(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (folder / "mlflow-server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "MLflow's server did not answer /health"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
