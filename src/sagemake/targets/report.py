"""Summary: one self-contained HTML page of the jobs: ledger, metrics across jobs, learning curves, tuning, data, cost

Usage: make report [ENV=...]   (python -m sagemake report [N])

Writes build/report.html from sagemake's own records of the N newest jobs
(default 100) and tuning runs (default 20): the ledger (status, duration,
billable seconds, $, spot savings), the primary metric across jobs in time
order by git commit, each job's learning curves (every metric it printed, over
its steps), each tuning run's leaderboard with its objective over the trials and
against each hyperparameter, the data (channel digests) and image each model
came from, and the cost per day. Charts are Plotly's, with plotly.js inside the
file: it opens offline, needs no server and fetches nothing. With no jobs yet,
the page says so. The first `make report` installs Plotly into the virtualenv
(requirements-report.txt); no other command needs it.
"""

from __future__ import annotations

from sagemake import jsonfile
from sagemake.cli import Exit, UserError, installed, say
from sagemake.config import resolve
from sagemake.executors import for_config, history

REPORT = "build/report.html"
JOBS, RUNS = 100, 20


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and not argv[0].isdigit()):
        raise UserError("usage: make report (python -m sagemake report [N])")
    installed("plotly", "requirements-report.txt", "make report")
    from sagemake.report import page
    from sagemake.targets.tune_jobs import leaderboard

    config = resolve()
    executor = for_config(config)
    prices = executor.prices()
    found = history.jobs(executor, int(argv[0]) if argv else JOBS, prices, series=True)
    runs = history.tunings(executor, RUNS) if found else []
    boards = {run["HyperParameterTuningJobName"]: leaderboard(run, executor, prices) for run in runs}
    text = page(config["PROJECT_NAME"], executor.where(), config["PRIMARY_METRIC"], found, runs, boards)
    path = config.root / REPORT
    jsonfile.write_text(path, text)  # a browser reloading it meanwhile reads the old page whole, never half
    said = f"{len(found)} job(s), {len(runs)} tuning run(s)" if found else \
        f"no jobs of {config['PROJECT_NAME']} yet ({executor.where()}): an empty report; `make train` runs one"
    say(f"report: {path.relative_to(config.root)} ({len(text.encode()) / 1e6:.1f} MB): {said}; open it in a browser")
    return Exit.OK

