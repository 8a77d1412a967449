"""Keeps a local job's training (or a served model) from outliving the executor that started it.

Usage: python guard.py EXECUTOR_PID GRACE_SECONDS [--cpus N,N...] [--container ENGINE NAME] [--scratch DIR]
                       -- COMMAND...

Runs COMMAND in a session of its own (so a terminal's Ctrl-C reaches only the
executor, which decides) and exits with its status (128 + N when signal N
ended it). It stops the training, SIGTERM first and SIGKILL once GRACE_SECONDS
have passed, when:
- it is asked to: SIGTERM, SIGINT or SIGHUP to the guard (Ctrl-C, MaxRuntime);
  a second request kills at once;
- the executor is gone, whatever ended it (kill -9 included): its parent is
  no longer EXECUTOR_PID.
With --cpus, COMMAND runs on those cores only (its CPU affinity, which its
children inherit). With --container, stopping also goes to the container named NAME through
ENGINE (`kill --signal TERM`, then `rm --force`), as `docker run` alone would
leave it running; a `run` COMMAND is split into `create` and `start --attach`,
so that a stop never meets a container still being made. With --scratch, DIR
(COMMAND's own scratch tree) is removed once COMMAND has ended, so an executor killed outright leaves none behind.

A file of its own, standard library only: it runs as a separate process and
imports nothing of sagemake. It writes nothing, since its output is the job's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.2


def main(argv: list[str]) -> int:
    executor, grace = int(argv[0]), float(argv[1])
    rest = argv[2:]
    container = None
    if rest[0] == "--cpus":
        os.sched_setaffinity(0, [int(core) for core in rest[1].split(",")])
        rest = rest[2:]
    if rest[0] == "--container":
        container, rest = rest[1:3], rest[3:]
    scratch = None
    if rest[0] == "--scratch":
        scratch, rest = rest[1], rest[2:]
    command = rest[1:]  # after "--"
    requests: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, frame: requests.append(signum))
    created = bool(container) and command[1:2] == ["run"]
    if created:
        # Made whole before it starts: a stop that came while `run` was still making it would leave the engine
        # finishing a container no one removes ("Created"). Removed here once it ended, not by --rm, so that its
        # own exit status is read (`start` says 1 where `run` says 126 or 127: a program that cannot run).
        arguments = command[3:] if command[2:3] == ["--rm"] else command[2:]
        made = subprocess.run([command[0], "create", *arguments], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, start_new_session=True, check=False)
        if made.returncode != 0 or requests:
            _engine(container, "rm", "--force")
            return 125 if made.returncode != 0 else 128 + requests[0]  # 125: as `run` says the engine failed
        command = [command[0], "start", "--attach", container[1]]
    training = subprocess.Popen(command, start_new_session=True)
    deadline = None
    killed = False
    while True:
        try:
            code = training.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        orphaned = os.getppid() != executor
        if deadline is None and (requests or orphaned):
            _stop(training, container, kill=False)
            deadline = time.monotonic() + grace
        elif deadline is not None and not killed and (time.monotonic() >= deadline or len(requests) > 1):
            _stop(training, container, kill=True)
            killed = True
    if created:
        state = subprocess.run([container[0], "container", "inspect", "--format", "{{.State.ExitCode}}",
                                container[1]], capture_output=True, text=True, check=False)
        code = int(state.stdout) if state.returncode == 0 and state.stdout.strip().isdigit() else code
    if container and (created or deadline is not None):  # a stopped container may outlive its client
        _engine(container, "rm", "--force")
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return code if code >= 0 else 128 - code


def _stop(training: subprocess.Popen, container: list[str] | None, kill: bool) -> None:
    if container:
        _engine(container, *(("rm", "--force") if kill else ("kill", "--signal", "TERM")))
    try:
        os.killpg(training.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _engine(container: list[str], *args: str) -> None:
    engine, name = container
    subprocess.run([engine, *args, name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
