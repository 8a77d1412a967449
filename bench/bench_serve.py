"""Benchmark behind the README's serving numbers (`make bench`); nothing is asserted.

The example model, trained by a real `make train` into a temporary folder, is
served as `make serve` serves it without an engine (docker/serve run by the
job's Python: gunicorn, one worker per CPU) and loaded with wrk (Debian's
`wrk`), POSTing one CSV row a request: requests per second and p50/p99 latency
at 1 and at 16 concurrent connections, straight to the model server and through
the capturing proxy `make serve` puts in front of it (CAPTURE_PERCENT=100: every
request and answer written in SageMaker's data capture format). Next to them, the
limit: the model's own predict() on the same row, in the same Python, without HTTP.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from sagemake.capture import Capture  # noqa: E402
from sagemake.config import resolve  # noqa: E402
from sagemake.executors.local.serving import CapturingProxy, ServingProcess, model_files  # noqa: E402
from sagemake.job_python import job_python  # noqa: E402

SECONDS = 10
LOADS = ((1, 1), (16, 2))  # (connections, wrk threads)
BARE_CALLS = 2000

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
    lines = (ROOT / "data/validation/validation.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "target"]
    return ",".join(lines[1].split(",")[i] for i in keep)


def wrk(url: str, connections: int, threads: int, script: Path, body: Path) -> dict:
    answer = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--latency", "-s", str(script),
                             f"{url}/invocations"], env={**os.environ, "BENCH_BODY": str(body)},
                            capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in answer or "Socket errors" in answer:
        raise SystemExit(f"bench_serve: wrk saw errors:\n{answer}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", answer, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", answer).group(1)),
            "p50": latency("50"), "p99": latency("99")}


def main() -> int:
    if not shutil.which("wrk"):
        print("bench_serve: wrk is not installed (Debian/Ubuntu: apt-get install wrk): serving not measured",
              file=sys.stderr)
        return 0
    config = resolve(root=ROOT)
    python = job_python(config)
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
        log = scratch / "server.log"
        with log.open("wb") as output:
            server = ServingProcess(ROOT, python).start(model_files(folder), free_port(), {}, output)
        try:
            server.wait_ready(log=log)
            wrk(server.url, 1, 1, script, body)  # warm-up
            results = [("off", connections, wrk(server.url, connections, threads, script, body))
                       for connections, threads in LOADS]
            proxy = CapturingProxy(0, server.url, Capture(scratch / "capture", 100, "bench"))
            try:
                wrk(proxy.url, 1, 1, script, body)
                results += [("100%", connections, wrk(proxy.url, connections, threads, script, body))
                            for connections, threads in LOADS]
            finally:
                proxy.close()
            captured = sum(len(path.read_bytes().splitlines()) for path in (scratch / "capture").rglob("*.jsonl"))
        finally:
            server.stop()
    cpus = len(os.sched_getaffinity(0))
    print(f"serving the example model, one CSV row a request, {SECONDS} s each with wrk, "
          f"{cpus} CPU(s), gunicorn with {cpus} worker(s) (process runtime)")
    print(f"  {'capture':>8} {'clients':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for capture, connections, result in results:
        print(f"  {capture:>8} {connections:>8} {result['rps']:>11.0f} {result['p50']:>8.2f} {result['p99']:>8.2f}")
    print(f"  captured: {captured} request(s) and answers written (every one the proxy answered)")
    p50, p99 = (float(t) * 1e3 for t in bare)
    print(f"  the model's own predict() on the same row, no HTTP ({BARE_CALLS} calls): "
          f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, so at most {1e3 / p50 * cpus:.0f}/s on {cpus} CPU(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
