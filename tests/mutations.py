"""Tests that bite: break one line of the code on purpose and check that a test fails.

Usage: .venv/bin/python tests/mutations.py [NAME ...]   (default: every mutation)

Each mutation replaces one exact piece of a source file, runs the tests named
for it, and puts the file back whatever happens. A mutation the tests do not
catch is printed as SURVIVED and the exit status is 1. Not part of `make test`
(each mutation runs tests of its own); run it after changing what it covers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (file, what is there, what it becomes, pytest selection)
MUTATIONS = {
    "metric regex unanchored": (
        "src/sagemake/request.py", 'METRIC_START = r"(?:^|[^\\w:./-])"', 'METRIC_START = r""',
        "tests/test_request.py -k own_name"),
    "unset optional sent as null": (
        "src/sagemake/contract.py", "items() if value is not None}", "items()}",
        "tests/test_contract.py -k unset_optionals"),
    "SM_* given to every process": (
        "src/sagemake/executors/runtimes.py", "        if code.is_dir():\n            program, path = code",
        "        env.update(toolkit_environment(request, str(tree), 1))\n        if code.is_dir():\n"
        "            program, path = code", "tests/test_local.py -k contract_environment"),
    "/opt/ml mounted whole": (
        "src/sagemake/executors/runtimes.py",
        'for part in layout.MOUNTED for f in ("-v", f"{tree / part}:{self.base}/{part}")]',
        'for f in ("-v", f"{tree}:{self.base}")]', "tests/test_local.py -k mounts"),
    "reserved hyperparameters let through": (
        "src/sagemake/request.py", "    if reserved:\n        raise", "    if False:\n        raise",
        "tests/test_request.py -k limits"),
    "image tag ignores the build flags": (
        "src/sagemake/image.py", 'extra = [" ".join(meaningful_flags(config.words("CONTAINER_BUILD_FLAGS"))), ',
        "extra = [", "tests/test_request.py -k own_dockerfile"),
    "JOB taken as a path": (
        "src/sagemake/request.py", "    if not JOB_NAME.fullmatch(name):", "    if False:",
        "tests/test_request.py -k job_name"),
    "output data not fetched": (
        "src/sagemake/fetch_model.py", "    if output:\n        unpack(output, partial / OUTPUT)", "",
        "tests/test_fetch.py -k writes_the_manifest"),
    "fetch without its lock": (
        "src/sagemake/fetch_model.py", "        fcntl.flock(descriptor, fcntl.LOCK_EX)\n", "",
        "tests/test_fetch.py -k concurrent"),
    "a bad archive as a traceback": (
        "src/sagemake/fetch_model.py", "except (tarfile.TarError, EOFError, zlib.error, OSError) as err:",
        "except ZeroDivisionError as err:", "tests/test_fetch.py -k bad_archive"),
    "credentials in .env taken": (
        "src/sagemake/config.py", "            elif key in CREDENTIALS:", "            elif False:",
        "tests/test_config.py -k credentials"),
    "failed job exits as bad input": (
        "src/sagemake/cli.py", "    status = Exit.JOB_FAILED", "    status = Exit.BAD_INPUT",
        "tests/test_cli.py"),
}


def caught(name: str) -> bool:
    file, before, after, tests = MUTATIONS[name]
    path = ROOT / file
    original = path.read_text()
    if original.count(before) != 1:
        raise SystemExit(f"mutations: '{name}' no longer matches {file} exactly once: update it")
    path.write_text(original.replace(before, after))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", *tests.split()], cwd=ROOT,
                              capture_output=True, text=True)
    finally:
        path.write_text(original)
    return done.returncode != 0


def main(names: list[str]) -> int:
    survived = 0
    for name in names or MUTATIONS:
        ok = caught(name)
        survived += not ok
        print(f"{'caught  ' if ok else 'SURVIVED'}  {name}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
