"""Summary: two or more jobs side by side, what differs first: settings, hyperparameters, data, image, metrics, cost

Usage: make compare JOBS='<job> <job> ...' [ENV=...]   (python -m sagemake compare JOB JOB ...)

One row per fact, one column per job, read from sagemake's own records (the
jobs' records and tags, and the manifest of a fetched model): first the facts
that differ between the jobs, then those they share. Facts, in this order: the
job (status, git commit, created, duration), its settings (instance type and
count, runtime, spot, ...), its hyperparameters, each channel's data (digest,
files, bytes), the image (and its digest, once fetched), the model's sha256,
every metric's final value and the bill (billable seconds, $, spot savings).
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError, print_table
from sagemake.config import resolve
from sagemake.executors import for_config, history
from sagemake.jobs.training import job_named, words
from sagemake.pricing import bill_cells

WIDEST = 48  # characters of a value shown: a long hyperparameter or image URI is cut, marked with ...


def facts(one: history.Job) -> list[tuple[str, str]]:
    """The job's facts as (what, value) rows, in the order they are shown."""
    rows = [("status", one.status), ("commit", one.commit), ("created", one.created[:19].replace("T", " ")),
            ("duration", f"{one.seconds}s")]
    rows += [(f"setting {name}", value) for name, value in one.settings.items()]
    rows += [(f"hp {name}", value) for name, value in sorted(one.record.get("HyperParameters", {}).items())]
    rows += [(f"data {channel}", f"{data.get('digest', '?')[:12]} {data.get('files', '?')} files "
                                 f"{data.get('bytes', '?')} bytes") for channel, data in one.data.items()]
    rows += [("image", one.image), ("image digest", one.image_digest or "-"),
             ("model sha256", (one.model_sha256 or "not fetched")[:12])]
    rows += [(f"metric {name}", f"{value:.6g}") for name, value in sorted(one.metrics.items())]
    rows += list(zip(("billable", "cost", "spot saved"), bill_cells(one.bill), strict=True))
    return rows


def table(found: list[history.Job]) -> tuple[list[list[str]], list[list[str]]]:
    """(rows that differ between the jobs, rows they share), each [what, value of each job]; a fact one job lacks
    is "-" there."""
    by_job = [dict(facts(one)) for one in found]
    order = list(dict.fromkeys(what for one in found for what, _ in facts(one)))
    differ, same = [], []
    for what in order:
        values = [_cut(job.get(what, "-")) for job in by_job]
        (same if len(set(values)) == 1 else differ).append([what, *values])
    return differ, same


def _cut(value: str) -> str:
    return value if len(value) <= WIDEST else value[:WIDEST - 3] + "..."


def main(argv: list[str]) -> int:
    """argv: the jobs' names, as words (make passes JOBS as one argument, quoted: split here, never globbed by a
    shell)."""
    named = [name for argument in argv for name in words(argument, "JOBS")]
    names = list(dict.fromkeys(job_named(name, "JOBS") for name in named))
    if len(names) < 2:
        given = f" (JOBS={' '.join(names)!r} names one)" if names else ""
        raise UserError(f"make compare takes two or more jobs{given}: make compare JOBS='<job> <job>' "
                        "(`make jobs` lists them)")
    config = resolve()
    executor = for_config(config)
    prices = executor.prices()
    found = [history.job(executor, name, prices) for name in names]
    differ, same = table(found)
    header = ["", *names]
    print_table([header, ["DIFFERENT", *[""] * len(names)], *(differ or [["(nothing)", *[""] * len(names)]]),
                 ["SAME", *[""] * len(names)], *same])
    return Exit.OK

