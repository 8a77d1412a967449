"""What every command shares: its exit statuses and errors, its lines on stderr, its progress and tables, and the
signals it takes as Ctrl-C (sagemake.__main__.run ends each command with them)."""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import threading
import time


class Exit(enum.IntEnum):
    """The exit statuses of every sagemake command (the README lists them)."""

    OK = 0
    JOB_FAILED = 1  # the job ran and ended Failed or Stopped: its record and log are kept
    BAD_INPUT = 2  # config, arguments, data or image refused before anything ran: fix and run again
    AWS_ERROR = 3  # AWS refused or could not be reached (credentials, permissions, network)
    DRIFT = 4  # make drift: at least DRIFT_THRESHOLD percent of the features drifted
    INTERRUPTED = 130  # Ctrl-C, a closed terminal or SIGTERM


class UserError(Exception):
    """Input that cannot work; the message names the problem and the fix."""

    status = Exit.BAD_INPUT


class JobFailed(UserError):
    """A job that ran and did not complete."""

    status = Exit.JOB_FAILED


class AwsError(UserError):
    """An AWS error, said in one line (sagemake.aws.api.explain)."""

    status = Exit.AWS_ERROR


def installed(module: str, requirements: str, command: str) -> None:
    """A command's own library (installed by its make target the first time it runs, and needed by no other
    command) is there, or one line says how to get it."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"{module} is not in this virtualenv: run `{command}`, which installs it ({requirements}) "
                        "the first time")


def say(message: str) -> None:
    """Progress for a person: on stderr, so stdout stays for data (plan JSON, logs)."""
    try:
        print(f"==> {message}", file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (closed, a broken pipe): the work goes on, unseen
        pass


class Progress:
    """Bytes moved so far, on stderr: one line rewritten in place on a terminal, else a line every
    QUIET_SECONDS (so a CI log shows a long step moving), then the total once done."""

    QUIET_SECONDS = 10

    def __init__(self, label: str, total: int):
        self.label, self.total, self.moved, self.shown = label, total, 0, -1
        self.terminal = sys.stderr.isatty()
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def __call__(self, count: int) -> None:
        with self.lock:  # boto3 calls this from its transfer threads
            self.moved += count
            percent = 100 * self.moved // self.total if self.total else 100
            if self.terminal and percent != self.shown:
                self.shown = percent
                print(f"\r==> {self.label}: {percent}% of {_size(self.total)}", end="", file=sys.stderr, flush=True)
            elif not self.terminal and time.monotonic() - self.last >= self.QUIET_SECONDS:
                self.last = time.monotonic()
                say(f"{self.label}: {percent}% of {_size(self.total)}")

    def done(self) -> None:
        prefix = "\r" if self.terminal else ""
        print(f"{prefix}==> {self.label}: {_size(self.moved)} done", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def print_table(table: list[list[str]]) -> None:
    """Rows in columns as wide as their widest cell, on stdout."""
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    sys.stdout.flush()  # the table before any words on stderr, where both reach one terminal or file


def interrupt(signum, frame):
    """A signal handler: the signal takes the path of Ctrl-C. SIGTERM and SIGHUP ask once: a repeat is ignored while
    the command stops (make, itself ending by SIGTERM, sends its children SIGTERM again), so what Ctrl-C's path
    does on its way out (stop a processing job, record a deploy, clean scratch) is not cut short."""
    if signum in (signal.SIGTERM, signal.SIGHUP):
        for number in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupted_by_signals():
    """SIGTERM and SIGHUP (a closed terminal, a cancelled CI run) stop the command as Ctrl-C does; off the main
    thread (where no handler can be set, and no signal arrives) nothing changes."""
    main = threading.current_thread() is threading.main_thread()
    previous = {n: signal.signal(n, interrupt) for n in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def held_signals():
    """Ctrl-C, SIGTERM and SIGHUP held back while steps that only make sense together run (the two renames of a swap):
    one that arrives meanwhile takes effect, as it would have, once they are done. Python runs every signal handler
    on the main thread, whichever thread the signal reached, so holding the handlers (not the thread's signal mask)
    holds them all. It yields the list of the signals that arrived so far, for steps that answer one at once (a stop
    that hastens). Off the main thread nothing changes."""
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return
    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, lambda signum, frame: arrived.append(signum)) for number in numbers}
    try:
        yield arrived
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if arrived:  # the first one, as its own handler would have taken it
            handler = previous[arrived[0]]
            if callable(handler):
                handler(arrived[0], None)
            elif handler != signal.SIG_IGN:
                os.kill(os.getpid(), arrived[0])  # the default action, now
