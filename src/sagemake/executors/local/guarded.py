"""What every local job runs under: its command under the guard (guard.py), which stops it with the executor
however the executor ends, and the identity of a process, so a record can tell later whether its owner still runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemake.cli import UserError, interrupted_by_signals
from sagemake.clock import now

GUARD = Path(__file__).with_name("guard.py")


POLL_SECONDS = 0.2  # how often the hosts are looked at while they train
SERIES = "metrics.json"  # in a job's folder: every metric it printed, as its series {name: [{Step, Value, Timestamp}]}


def uri_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise UserError(f"{uri} is not a file:// URI: the local executor reads and writes local folders only")
    return Path(unquote(parsed.path))


def process_identity(pid: int) -> dict:
    """Enough to tell later whether this very process still runs: its host, pid and start time."""
    fields = _stat(pid)
    return {"Host": socket.gethostname(), "Pid": pid, "Start": fields[19] if fields else None}


def running(identity: dict | None) -> bool | None:
    """Whether that process still runs; None when this host cannot tell (it ran on another one)."""
    if not identity or identity.get("Host") != socket.gethostname():
        return None
    try:
        os.kill(identity["Pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(identity["Pid"])
    if fields is None:  # no /proc here: the pid alone has to do
        return True
    return fields[0] != "Z" and fields[19] == identity.get("Start")  # not a zombie, nor a newer process


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command's name (state first, start time 20th), on Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None



def run_guarded(command: list[str], env: dict, guard_arguments: list[str], log: Path, limit: float,
                grace: int, stamps: list[str | None] | None = None) -> tuple[int, str | None]:
    """One command under the guard (guard.py), so it dies with this process however it ends, its output to log and
    the terminal (the times of its lines in stamps, see copy_lines): (exit status, None or why it was stopped:
    MaxRuntimeExceeded, Stopped). MaxRuntime, Ctrl-C, SIGTERM and SIGHUP stop it (SIGTERM, SIGKILL after grace; a
    second Ctrl-C kills it at once)."""
    stopped_by = None
    with interrupted_by_signals():
        with log.open("wb") as handle:
            process = subprocess.Popen([sys.executable, str(GUARD), str(os.getpid()), str(grace), *guard_arguments,
                                        "--", *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            reader = threading.Thread(target=copy_lines, args=(process.stdout, handle, b"", threading.Lock(), stamps),
                                      daemon=True)
            reader.start()
            started = time.monotonic()
            try:
                while process.poll() is None:
                    if time.monotonic() - started >= limit:
                        stopped_by = "MaxRuntimeExceeded"
                        break
                    time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                stopped_by = "Stopped"
            while process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the guard's second request kills at once
                try:
                    process.wait()
                except KeyboardInterrupt:
                    pass
            reader.join()
    return process.returncode, stopped_by


def copy_lines(stream, log, prefix: bytes, lock: threading.Lock, stamps: list[str | None] | None = None,
               label: bytes = b"") -> None:
    """A host's output to train.log and the terminal, line by line as it comes (after prefix, its name when
    there are several; on the terminal after label too, a tuning trial's where several run at once); to train.log
    alone once the terminal is gone, so the job never blocks on a full pipe.
    stamps, when given, gets one entry per line written: when a line that can hold a metric (`name=value`) came,
    None for any other: the times of the metrics' series (jobs.training.metric_points)."""
    terminal = True
    for line in iter(stream.readline, b""):
        with lock:
            if stamps is not None:
                stamps.append(now() if b"=" in line else None)
            log.write(prefix + line)
            log.flush()
            if terminal:
                try:
                    sys.stdout.buffer.write(label + prefix + line)
                    sys.stdout.flush()
                except OSError:
                    terminal = False


def log_lines(path: Path) -> list[str]:
    """A log's lines as they were written, one per line its job printed (split at newlines only, as they were
    read), so each has its place in the stamps copy_lines kept."""
    if not path.is_file():
        return []
    text = path.read_bytes().decode(errors="replace")
    return text.removesuffix("\n").split("\n") if text else []
