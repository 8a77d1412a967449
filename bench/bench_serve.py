"""Benchmark behind the serving figures in bench/RESULTS.md (`make bench`); nothing is asserted.

The example model, trained by a real `make train` into a temporary folder, is
served on this machine by four stacks side by side, each loaded with wrk
(Debian's `wrk`) POSTing the same CSV row a request, at 1 and at 16 concurrent
connections, in interleaved rounds (the median of each is printed):

- sagemake's server, as `make serve` runs it without an engine (docker/serve
  run by the job's Python under the guard: granian, one worker per CPU);
- gunicorn's thread worker, one worker per CPU and one thread each, running
  sagemake's own WSGI app: sagemake's server before granian;
- the same, through the capturing proxy `make serve` puts in front of it
  (CAPTURE_PERCENT=100: every request and answer written in SageMaker's data
  capture format);
- the classic stack of AWS's own sample container: nginx in front of gunicorn
  (sync workers, one per CPU, on a unix socket) running a flask app that reads
  the CSV with numpy, as that sample does, and calls the same trainer.predict.

flask and gunicorn are installed into a scratch folder for the run (they are
not the image's); a stack whose program is missing (nginx: Debian's `nginx`)
is left out with the reason. Next to them, the limit: the model's own
predict() on the same row, in the same Python, without HTTP, and the load
average.
"""

import getpass
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from sagemake.capture import Capture  # noqa: E402
from sagemake.config import resolve  # noqa: E402
from sagemake.executors.local.serving import CapturingProxy, ServingProcess, model_files  # noqa: E402
from sagemake.job_python import job_python  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SERVE_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_SERVE_ROUNDS", "3"))
LOADS = ((1, 1), (16, 2))  # (connections, wrk threads)
BARE_CALLS = 2000
PEERS = ("flask==3.1.3", "gunicorn==27.0.1")  # the peers' Python packages, installed for the run only
READY_SECONDS = 60

BARE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from trainer import predict
    model = predict.load(Path(sys.argv[1]))
    row = [[float(v) for v in sys.argv[2].split(",")]]
    for _ in range(50):
        predict.predict(model, row)
    times = []
    for _ in range(int(sys.argv[3])):
        started = time.perf_counter()
        predict.predict(model, row)
        times.append(time.perf_counter() - started)
    times.sort()
    print(times[len(times) // 2], times[int(len(times) * 0.99)])
""")

LUA = textwrap.dedent("""
    local file = io.open(os.getenv("BENCH_BODY"), "rb")
    wrk.method = "POST"
    wrk.body = file:read("*a")
    file:close()
    wrk.headers["Content-Type"] = "text/csv"
""")

# AWS's sample container's way: flask, the body read with numpy, one predict a request.
FLASK_APP = textwrap.dedent("""
    import io, json, os
    from pathlib import Path
    import flask
    import numpy as np
    from trainer import predict
    MODEL = predict.load(Path(os.environ["BENCH_MODEL"]))
    app = flask.Flask(__name__)

    @app.route("/ping", methods=["GET"])
    def ping():
        return flask.Response("", status=200)

    @app.route("/invocations", methods=["POST"])
    def invocations():
        if flask.request.mimetype != "text/csv":
            return flask.Response("send text/csv\\n", status=415, mimetype="text/plain")
        rows = np.loadtxt(io.StringIO(flask.request.get_data(as_text=True)), delimiter=",", ndmin=2)
        answer = json.dumps({"predictions": predict.predict(MODEL, rows.tolist())})
        return flask.Response(answer, mimetype="application/json")
""")

NGINX_CONF = textwrap.dedent("""
    daemon off;
    user {user};  # the one of this run (the unix socket is in its private folder)
    worker_processes 1;
    pid {scratch}/nginx.pid;
    error_log {scratch}/nginx-error.log;
    events {{ worker_connections 1024; }}
    http {{
        access_log {scratch}/nginx-access.log;
        client_body_temp_path {scratch}/nginx-body;
        proxy_temp_path {scratch}/nginx-proxy;
        client_max_body_size 6m;
        proxy_read_timeout 60s;
        upstream model {{ server unix:{socket}; }}
        server {{
            listen 127.0.0.1:{port};
            keepalive_timeout 5;
            location ~ ^/(ping|invocations)$ {{
                proxy_set_header Host $http_host;
                proxy_redirect off;
                proxy_pass http://model;
            }}
        }}
    }}
""")

# sagemake's own WSGI app, for another server
OWN_APP = textwrap.dedent("""
    from sagemake.contract import serve
    app = serve.App(serve.load_model(), serve.payload_limit({}))
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def trained(scratch: Path) -> Path:
    """MODELS_DIR/<job>/ of a fresh `make train` (no engine: the process runtime)."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{scratch}/no-engine.sock", "JOBS_DIR": str(scratch / "jobs"),
           "MODELS_DIR": str(scratch / "models")}
    subprocess.run(["make", "-s", "train"], cwd=ROOT, env=env, check=True, capture_output=True)
    (folder,) = (scratch / "models").iterdir()
    return folder


def first_row() -> str:
    validation = ROOT / "data/validation/validation.csv"
    if not validation.is_file():
        subprocess.run(["make", "-s", "data"], cwd=ROOT, check=True, capture_output=True)
    lines = validation.read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "target"]
    return ",".join(lines[1].split(",")[i] for i in keep)


def wrk(url: str, connections: int, threads: int, script: Path, body: Path, seconds: int = SECONDS) -> dict:
    answer = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                             str(script), f"{url}/invocations"], env={**os.environ, "BENCH_BODY": str(body)},
                            capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in answer or "Socket errors" in answer:
        raise SystemExit(f"bench_serve: wrk saw errors at {url}:\n{answer}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", answer, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", answer).group(1)),
            "p50": latency("50"), "p99": latency("99")}


def wait_ping(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench_serve: {url} stopped at start:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench_serve: {url} did not answer /ping in {READY_SECONDS} s")


class Started:
    """A peer's processes (each in a session of its own), its URL, and its stop."""

    def __init__(self, url: str, processes: list[subprocess.Popen]):
        self.url, self.processes = url, processes

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def spawn(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def peer_env(scratch: Path, folder: Path, extra: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(extra), str(ROOT / "src"), str(scratch)]),
            "BENCH_MODEL": str(folder), "SAGEMAKER_BASE_DIR": str(scratch / "base")}


def classic(python: Path, scratch: Path, folder: Path, extra: Path, cpus: int) -> Started | str:
    """nginx in front of gunicorn and flask: a Started, or why it cannot run here."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)
    if not nginx:
        return "nginx is not installed (Debian/Ubuntu: apt-get install nginx)"
    (scratch / "bench_flask.py").write_text(FLASK_APP)
    sock, port = scratch / "gunicorn.sock", free_port()
    conf = scratch / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=getpass.getuser(), scratch=scratch, socket=sock, port=port))
    env, log = peer_env(scratch, folder, extra), scratch / "classic.log"
    app = spawn([str(python), "-m", "gunicorn", "--bind", f"unix:{sock}", "--workers", str(cpus), "--timeout", "60",
                 "bench_flask:app"], env, log)
    proxy = spawn([nginx, "-p", str(scratch), "-c", str(conf)], env, log)
    started = Started(f"http://127.0.0.1:{port}", [proxy, app])
    try:
        wait_ping(started.url, app, log)
    except SystemExit:
        started.stop()
        raise
    return started


def gthread(python: Path, scratch: Path, folder: Path, extra: Path, cpus: int) -> Started:
    """sagemake's app in gunicorn's thread worker, one worker per CPU, one thread each, an access log."""
    base = scratch / "base"
    base.mkdir(exist_ok=True)
    (base / "model").symlink_to(folder)
    (scratch / "bench_own.py").write_text(OWN_APP)
    port, log = free_port(), scratch / "gthread.log"
    process = spawn([str(python), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(cpus),
                     "--worker-class", "gthread", "--threads", "1", "--keep-alive", "5", "--access-logfile", "-",
                     "bench_own:app"], peer_env(scratch, folder, extra), log)
    started = Started(f"http://127.0.0.1:{port}", [process])
    try:
        wait_ping(started.url, process, log)
    except SystemExit:
        started.stop()
        raise
    return started


def main() -> int:
    if not shutil.which("wrk"):
        print("bench_serve: wrk is not installed (Debian/Ubuntu: apt-get install wrk): serving not measured",
              file=sys.stderr)
        return 0
    config = resolve(root=ROOT)
    python = job_python(config)
    row = first_row()
    cpus = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = trained(scratch)
        row = first_row()  # the data step of the training wrote it, when it was missing
        body, script = scratch / "row.csv", scratch / "post.lua"
        body.write_text(row + "\n")
        script.write_text(LUA)
        bare = subprocess.run([str(python), "-c", BARE, str(folder), row, str(BARE_CALLS)],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
                              check=True).stdout.split()
        extra = scratch / "peers"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target",
                        str(extra), *PEERS], check=True, capture_output=True)
        servers, left_out = {}, {}
        log = scratch / "server.log"
        with log.open("wb") as output:
            own = ServingProcess(ROOT, python).start(model_files(folder), free_port(), {}, output)
        try:
            own.wait_ready(log=log)
            servers["sagemake (granian)"] = own
            proxy = CapturingProxy(0, own.url, Capture(scratch / "capture", 100, "bench"))
            servers["sagemake, every request captured"] = types.SimpleNamespace(url=proxy.url, stop=proxy.close)
            servers["gunicorn gthread (before)"] = gthread(python, scratch, folder, extra, cpus)
            peer = classic(python, scratch, folder, extra, cpus)
            if isinstance(peer, str):
                left_out["nginx + gunicorn + flask"] = peer
            else:
                servers["nginx + gunicorn + flask"] = peer
            for server in servers.values():
                wrk(server.url, 1, 1, script, body, seconds=2)  # warm-up
            measured = {name: {c: [] for c, _ in LOADS} for name in servers}
            for _ in range(ROUNDS):
                for name, server in servers.items():
                    for connections, threads in LOADS:
                        measured[name][connections].append(wrk(server.url, connections, threads, script, body))
        finally:
            for server in servers.values():
                server.stop()
        captured = sum(len(path.read_bytes().splitlines()) for path in (scratch / "capture").rglob("*.jsonl"))
    load_after = os.getloadavg()[0]
    p50, p99 = (float(t) * 1e3 for t in bare)
    limit = 1e3 / p50 * cpus
    print(f"serving the example model, one CSV row a request, wrk {SECONDS} s a load, median of {ROUNDS} interleaved "
          f"rounds, {cpus} CPU(s), load average {load_before:.1f} before, {load_after:.1f} after")
    print(f"  the model's own predict() on the same row, no HTTP ({BARE_CALLS} calls): p50 {p50:.3f} ms, "
          f"p99 {p99:.3f} ms: the limit is {limit:.0f} requests/s on {cpus} CPU(s)")
    print(f"  {'server':<30} {'clients':>7} {'requests/s':>10} {'of limit':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p99/p50':>7} {'p50-bare':>8}")
    for name, loads in measured.items():
        for connections, runs in loads.items():
            rps, q50, q99 = (statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99"))
            print(f"  {name:<30} {connections:>7} {rps:>10.0f} {rps / limit:>8.0%} {q50:>7.2f} {q99:>7.2f} "
                  f"{q99 / q50:>7.1f} {q50 - p50:>8.2f}")
    print(f"  captured: {captured} request(s) and answers written in SageMaker's data capture format "
          "(CAPTURE_PERCENT=100, through the proxy `make serve` puts in front of the server)")
    for name, why in left_out.items():
        print(f"  {name}: not measured: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
