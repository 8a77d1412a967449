"""Summary: the ledger: recent jobs with status, duration, billable seconds, cost, warm pool, main metric

Usage: make jobs [ENV=...]   (python -m sagemake jobs [N])

The N most recent jobs (default 10): status, duration, billable seconds, $,
spot savings, main metric, warm pool; a total; the best trial of each tuning
run starred; then the N most recent processing jobs (`make preprocess`):
status, duration, $. Locally, what the jobs would have cost on SageMaker.
Each job's main metric is the one its own record declared first (PRIMARY_METRIC
when the job declared it), never today's METRICS: jobs that declared other
metrics show theirs, each in a column of its own.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError, print_table, say
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import duration, final_metrics, metric_columns
from sagemake.jobs.tuning import run_of
from sagemake.pricing import PROCESSING, Prices, bill_cells, cost, ledger_entry, money, total_cells


def list_jobs(config: Config, executor: Executor, limit: int) -> int:
    """The ledger: each job's status, duration, billable seconds, $ and spot savings, main metric (and its warm
    pool when it has one), then the totals; then this project's processing jobs, each with its status, duration and
    $ (none: nothing more); where the prices came from on stderr."""
    prices = executor.prices()
    rows, pools, entries, records, values = [], [], [], [], []  # each row's record, and every metric it recorded
    for name in executor.names(limit):
        record = executor.describe(name)
        records.append(record)
        values.append(final_metrics(record))
        entries.append(ledger_entry(record, prices))
        rows.append([name, record["TrainingJobStatus"], f"{duration(record)}s", *bill_cells(entries[-1])])
        pools.append(_pool(record.get("WarmPoolStatus")))
    best = executor.tuning().best_trials()
    rows = [[row[0] + (" *" if row[0] in best else ""), *row[1:]] for row in rows]
    processed = _processing_rows(executor, limit, prices)
    if not rows:
        which = "training jobs" if processed else "jobs"
        say(f"no {which} of {config['PROJECT_NAME']} yet ({executor.where()}): `make train{executor.env_flag()}` "
            "runs one")
        if not processed:
            return Exit.OK
    else:
        header = ["JOB", "STATUS", "DURATION", "BILLABLE", "COST", "SPOT SAVED"]
        total = ["TOTAL", "", "", *total_cells(entries)]
        columns = metric_columns(records, config["PRIMARY_METRIC"]) or ["METRIC"]  # each job's main one
        header += columns
        total += [""] * len(columns)
        rows = [row + [f"{found[column]:.4f}" if column in found else "-" for column in columns]
                for row, found in zip(rows, values, strict=True)]
        if any(pools):  # a column only when a job has a warm pool
            header.append("WARM POOL")
            rows = [row + [pool or "-"] for row, pool in zip(rows, pools, strict=True)]
            total.append("")
        print_table([header, *rows, total])
    if processed:
        if rows:
            print()
        print_table([["PROCESSING JOB", "STATUS", "DURATION", "COST"], *processed])
    starred = sorted({run_of(row[0].removesuffix(" *")) for row in rows if row[0].endswith(" *")} - {None})
    if starred:
        shows = ", ".join(f"`make tune-jobs{executor.env_flag()} TUNING={run}`" for run in starred)
        say(f"jobs: * the best trial of its tuning run ({shows} shows the run)")
    would = "what they would have cost on SageMaker (their instance type and count, for their duration); " \
        if prices.hypothetical else ""
    say(f"jobs: {would}{prices.sources()}")
    return Exit.OK


def _processing_rows(executor: Executor, limit: int, prices: Prices) -> list[list[str]]:
    """This project's processing jobs where the executor runs them, newest first: name, status, duration, and
    what it cost (or, locally, would have) on SageMaker for its instance type and count for that duration, at
    processing's rate."""
    from sagemake.jobs.processing import duration
    place = executor.processing()
    rows = []
    for name in place.names(limit):
        record = place.describe(name)  # a local one whose executor is gone is settled first
        if record is None:  # removed meanwhile
            continue
        cluster = record.get("ProcessingResources", {}).get("ClusterConfig", {})
        seconds = duration(record)
        hourly = prices.hourly(cluster["InstanceType"], PROCESSING).hourly if cluster.get("InstanceType") else None
        rows.append([name, record["ProcessingJobStatus"], f"{seconds}s",
                     money(cost(hourly, seconds, cluster.get("InstanceCount", 1)))])
    return rows



def _pool(status: dict | None) -> str:
    """WarmPoolStatus in a few words: its status, the seconds it kept the instances, the job that took it."""
    if not status:
        return ""
    words = [status["Status"]]
    if status.get("ResourceRetainedBillableTimeInSeconds") is not None:
        words.append(f"{status['ResourceRetainedBillableTimeInSeconds']}s kept")
    if status.get("ReusedByJob"):
        words.append(f"by {status['ReusedByJob']}")
    return " ".join(words)


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and not argv[0].isdigit()):
        raise UserError("usage: make jobs (python -m sagemake jobs [N])")
    config = resolve()
    return list_jobs(config, for_config(config), int(argv[0]) if argv else 10)

