"""Benchmarks of the AWS path against moto's server on 127.0.0.1 (`make bench`); nothing is asserted.

1. A re-run of `make train ENV=prod` with nothing changed: time until the job
   is submitted, and what was built, pushed and uploaded on the way.
2. Sync of 1,000 files / 200 MB to S3, against `aws s3 sync` in the same run,
   then an unchanged re-sync of each.
"""

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from emulator import SageMakerDriver, make_bucket, register_image, repository_image, settings  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

FILES, FILE_BYTES = 1000, 200_000
ROUNDS = 3


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


def sync_against_aws_cli(scratch: Path, env: dict) -> dict[str, float]:
    """Both tools as their own processes against the same server, on the same files."""
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
        cache.unlink(missing_ok=True)
        for name, command, command_env in (
            ("sagemake sync", [str(ROOT / "scripts/upload_data.sh")], ours),
            ("aws s3 sync", aws, env),
            ("sagemake re-sync, unchanged", [str(ROOT / "scripts/upload_data.sh")], ours),
            ("aws s3 sync re-sync, unchanged", aws, env),
        ):
            started = time.perf_counter()
            subprocess.run(command, env=command_env, check=True, capture_output=True)
            times.setdefault(name, []).append(time.perf_counter() - started)
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
            times = sync_against_aws_cli(Path(scratch), env)
    finally:
        server.stop()
    print("| measure (moto's server on 127.0.0.1) | result | target |")
    print("|---|---|---|")
    print(f"| re-run of `make train ENV=prod`, nothing changed, to submission | {seconds:.2f} s | at most 3 s |")
    print(f"| what that re-run built, pushed and uploaded | {moved} | nothing |")
    size = FILES * FILE_BYTES / 1e6
    for name, value in times.items():
        target = {"sagemake sync": "at least as fast as aws s3 sync", "sagemake re-sync, unchanged": "at most 1 s"}
        print(f"| {name}: {FILES} files, {size:.0f} MB (median of {ROUNDS}) | {value:.2f} s | {target.get(name, '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
