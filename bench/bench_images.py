"""Benchmarks of the image path (`make bench`): they need a container engine and a registry.

1. Cold build of the bring-your-own image (its layers and base cache removed first).
2. Warm rebuild and push after a code-only change (ENV=prod, the registry standing in for ECR).
3. Script mode: a code-only change to submission (ENV=prod; the image is unchanged, the code uploaded).
The AWS side is moto's server on 127.0.0.1. DOCKER_HOST and TEST_REGISTRY say where the engine and
the registry are (tests/container_engine.sh start prints them); TEST_CONTAINER_FLAGS holds extra
engine flags. Without an engine it says so and measures nothing.
"""

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' emulator and helpers

from conftest import copy_repo  # noqa: E402
from emulator import SageMakerDriver, make_bucket, register_image, settings  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

FLAGS = os.environ.get("TEST_CONTAINER_FLAGS", "")


def run(repo, target, env, until=None):
    """Seconds for `make TARGET`, or until a line containing `until` appears on stderr."""
    started = time.perf_counter()
    process = subprocess.Popen(["make", "-s", target], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    seconds, lines = None, []
    for line in process.stderr:
        lines.append(line)
        if until and seconds is None and until in line:
            seconds = time.perf_counter() - started
    if process.wait() != 0 and until is None:
        raise SystemExit(f"make {target} failed:\n{''.join(lines)}")
    return seconds if until else time.perf_counter() - started


def image_in(repo: Path, env: dict) -> str:
    return subprocess.run([sys.executable, "-m", "sagemake", "image"], cwd=repo, capture_output=True, text=True,
                          env=env, check=True).stdout.strip()


def touch_code(repo: Path) -> None:
    with (repo / "src/trainer/train.py").open("a") as handle:
        handle.write(f"# changed at {time.time()}\n")


def main() -> int:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0 or not os.environ.get("TEST_REGISTRY"):
        print("image benchmarks: skipped (no engine or no TEST_REGISTRY: see tests/container_engine.sh)")
        return 0
    logging.getLogger("werkzeug").disabled = True
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    results = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            repo = copy_repo(Path(scratch) / "repo")
            venv = os.environ.get("VENV", str(ROOT / ".venv"))
            base = {**os.environ, "VENV": venv if os.path.isabs(venv) else str(ROOT / venv),
                    "CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": FLAGS, "MODELS_DIR": f"{scratch}/models"}
            local = {**base, "ENV": "local"}
            subprocess.run(["docker", "rmi", "-f", image_in(repo, local)], capture_output=True)
            subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
            subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
            results.append(("cold build of the image (`make build`)", run(repo, "build", local), ""))

            aws = {**base, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true", "ENV": "prod",
                   **settings(IMAGE_REGISTRY=os.environ["TEST_REGISTRY"])}
            os.environ.update({k: aws[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
            make_bucket()
            run(repo, "build", aws)  # pushed once
            touch_code(repo)
            results.append(("warm rebuild and push after a code-only change (`make build ENV=prod`)",
                            run(repo, "build", aws), "at most 10 s"))

            script = {**aws, "CODE_MODE": "script"}
            run(repo, "build", script)
            register_image(image_in(repo, script))  # what a push to ECR records
            with SageMakerDriver(model=b"", step_seconds=0.1):
                run(repo, "train", script, until="submitted to SageMaker")  # data uploaded, code uploaded
            touch_code(repo)
            with SageMakerDriver(model=b"", step_seconds=0.1):
                seconds = run(repo, "train", script, until="submitted to SageMaker")
            results.append(("script mode: code-only change to submission (`make train ENV=prod`)", seconds,
                            "at most 5 s"))
    finally:
        server.stop()
    print("| measure (local engine and registry, AWS emulated) | result | target |")
    print("|---|---|---|")
    for name, seconds, target in results:
        print(f"| {name} | {seconds:.1f} s | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
