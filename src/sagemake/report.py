"""`make report`'s page: one self-contained HTML file of this project's jobs, drawn with Plotly.

Everything is inside the file: the tables, the data of every chart and plotly.js itself, so it opens offline, from a
CI artefact or an attachment, with nothing to serve and nothing fetched. Plotly is imported here only (the report is
its one user), so no other command pays for it.

Sections: the ledger; the primary metric across jobs in time order, by git commit; each job's learning curves
(every metric over its steps); each tuning run's leaderboard, its objective over the trials and against each
hyperparameter; which data and image each model came from; what the jobs cost each day.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone

from sagemake.executors.history import Job, cost_per_day
from sagemake.jobs.training import main_metric, metric_columns
from sagemake.jobs.tuning import trial_number
from sagemake.pricing import bill_cells, money, total_cells

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-size: 0.9em; } .chart { max-width: 1100px; }
"""


def page(project: str, where: str, chosen: str, found: list[Job], runs: list[dict], leaderboards: dict,
         now: datetime | None = None) -> str:
    """The whole report as one HTML document. chosen: PRIMARY_METRIC; the primary metric is the newest job's main
    one, from its own record (as the ledger's), not today's METRICS. leaderboards: {tuning run: (header, rows)} as
    `make tune-jobs` prints them."""
    now = now or datetime.now(timezone.utc)
    title = f"{project}: jobs report"
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class=note>{len(found)} job(s) {_e(where)}; made {now:%Y-%m-%d %H:%M} UTC by `make report`.</p>"]
    figures = []
    if not found:
        parts.append(f"<p id=empty>No jobs of {_e(project)} yet ({_e(where)}): <code>make train</code> runs one, "
                     "then <code>make report</code> shows it here.</p>")
    else:
        primary = main_metric(found[0].record, chosen)
        parts += _ledger(found, metric_columns([one.record for one in found], chosen))
        parts.append("<h2>Primary metric across jobs</h2>")
        parts.append(_chart(figures, primary_figure(found, primary)) if primary else
                     "<p class=note>No metric is declared (METRICS): nothing to follow across jobs.</p>")
        parts.append("<h2>Learning curves</h2>")
        curves = [one for one in found if one.series]
        if not curves:
            parts.append("<p class=note>No job printed a declared metric.</p>")
        for one in curves:
            parts.append(_chart(figures, learning_figure(one)))
        parts.append("<h2>Tuning runs</h2>")
        if not runs:
            parts.append("<p class=note>No tuning run (`make tune`).</p>")
        for run in runs:
            parts += _tuning(figures, run, leaderboards.get(run["HyperParameterTuningJobName"]))
        parts += _provenance(found)
        parts += _drift(found)
        parts += _cost(figures, found)
    script = ""
    if figures:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<style>{STYLE}</style>{script}</head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text))


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), row_id: str = "",
           markup: set[int] = frozenset()) -> str:
    """markup: the columns whose cells are HTML already (links)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{cell if i in markup else _e(cell)}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{f' id={row_id}' if row_id else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(figures: list, figure) -> str:
    figures.append(figure)
    return "<div class=chart>" + figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG,
                                                div_id=f"chart-{len(figures)}") + "</div>"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ledger(found: list[Job], columns: list[str]) -> list[str]:
    """Each job's row, with a column per main metric of the jobs (as `make jobs`)."""
    columns = columns or ["metric"]
    rows = [[one.name, one.status, one.created[:19].replace("T", " "), f"{one.seconds}s", *bill_cells(one.bill),
             *(_value(one.metrics.get(column)) for column in columns), one.commit, one.tuning or ""] for one in found]
    rows.append(["TOTAL", "", "", "", *total_cells([one.bill for one in found]), *[""] * len(columns), "", ""])
    header = ["job", "status", "created (UTC)", "duration", "billable", "cost", "spot saved", *columns, "commit",
              "tuning run"]
    return ["<h2>Ledger</h2>", _table(header, rows, set(range(3, 7 + len(columns))), "ledger")]


def primary_figure(found: list[Job], primary: str):
    """The primary metric of every job that has it, in the order the jobs were created, one trace per git commit."""
    import plotly.graph_objects as go

    figure = go.Figure()
    by_commit: dict[str, list[Job]] = {}
    for one in sorted(found, key=lambda j: j.created):
        if one.metrics.get(primary) is not None:
            by_commit.setdefault(one.commit, []).append(one)
    for commit, ones in by_commit.items():
        figure.add_trace(go.Scatter(
            x=[one.created for one in ones], y=[one.metrics[primary] for one in ones], mode="markers+lines",
            name=f"commit {commit}", text=[one.name for one in ones],
            hovertemplate="%{text}<br>%{x}<br>" + primary + "=%{y:.4f}<extra>commit " + commit + "</extra>"))
    figure.update_layout(title=f"{primary} across jobs, by git commit", xaxis_title="job created (UTC)",
                         yaxis_title=primary, height=380, margin={"t": 50})
    return figure


def learning_figure(one: Job):
    """Every metric the job printed, over its steps; the time each value was printed shows on hover."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for metric, points in sorted(one.series.items()):
        figure.add_trace(go.Scatter(
            x=[p["Step"] for p in points], y=[p["Value"] if math.isfinite(p["Value"]) else None for p in points],
            mode="lines+markers", name=metric, text=[p.get("Timestamp", "") for p in points],
            hovertemplate="step %{x}: %{y:.6g}<br>%{text}<extra>" + metric + "</extra>"))
    figure.update_layout(title=f"{one.name} ({one.status})", xaxis_title="step (the metric's nth value)",
                         height=320, margin={"t": 50})
    steps = max((len(points) for points in one.series.values()), default=1)
    figure.update_xaxes(tickmode="linear", tick0=0, dtick=max(1, math.ceil(steps / 10)), rangemode="tozero")
    return figure


def tuning_figure(run: dict):
    """A tuning run's objective over its trials (by trial number, with the best so far) and against each tuned
    hyperparameter."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    config = run["HyperParameterTuningJobConfig"]
    goal = config["HyperParameterTuningJobObjective"]
    scored = sorted(((trial_number(s["TrainingJobName"]), s) for s in run.get("TrainingJobSummaries", [])
                     if "FinalHyperParameterTuningJobObjectiveMetric" in s), key=lambda pair: pair[0])
    ranges = [(entry["Name"], entry.get("ScalingType", "Linear"))
              for kind in config["ParameterRanges"].values() for entry in kind]
    figure = make_subplots(rows=1, cols=1 + len(ranges), shared_yaxes=True,
                           subplot_titles=["objective over trials", *(name for name, _ in ranges)])
    numbers = [number for number, _ in scored]
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for _, s in scored]
    names = [s["TrainingJobName"] for _, s in scored]
    better = min if goal["Type"] == "Minimize" else max
    best = [better(values[:i + 1]) for i in range(len(values))]
    figure.add_trace(go.Scatter(x=numbers, y=values, mode="markers", name="trial", text=names,
                                hovertemplate="%{text}<br>%{y:.6g}<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Scatter(x=numbers, y=best, mode="lines", line_shape="hv", name="best so far"), row=1, col=1)
    figure.update_xaxes(title_text="trial (in the order started)", tickmode="linear", tick0=1, dtick=1, row=1, col=1)
    for column, (name, scaling) in enumerate(ranges, start=2):
        figure.add_trace(go.Scatter(x=_numbers([s.get("TunedHyperParameters", {}).get(name) for _, s in scored]),
                                    y=values,
                                    mode="markers", showlegend=False, text=names,
                                    hovertemplate="%{text}<br>" + name + "=%{x}<br>%{y:.6g}<extra></extra>"),
                         row=1, col=column)
        figure.update_xaxes(title_text=name, type="log" if scaling == "Logarithmic" else None, row=1, col=column)
    figure.update_yaxes(title_text=f"{goal['MetricName']} ({goal['Type']})", row=1, col=1)
    figure.update_layout(title=run["HyperParameterTuningJobName"], height=360, margin={"t": 70})
    return figure


def _numbers(values: list) -> list:
    """Hyperparameters as SageMaker keeps them (strings), as numbers where they all are (else as categories)."""
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        return values


def _tuning(figures: list, run: dict, board: tuple[list[str], list[list[str]]] | None) -> list[str]:
    name = run["HyperParameterTuningJobName"]
    goal = run["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    best = (run.get("BestTrainingJob") or {}).get("TrainingJobName")
    parts = [f"<h3>{_e(name)}: {_e(run['HyperParameterTuningJobStatus'])}, {_e(goal['Type'])} "
             f"{_e(goal['MetricName'])}" + (f", best {_e(best)}" if best else "") + "</h3>"]
    if board:
        parts.append(_table(*board))
    if any("FinalHyperParameterTuningJobObjectiveMetric" in s for s in run.get("TrainingJobSummaries", [])):
        parts.append(_chart(figures, tuning_figure(run)))
    return parts


def _provenance(found: list[Job]) -> list[str]:
    channels = sorted({channel for one in found for channel in one.data})
    rows = []
    for one in found:
        cells = [one.name, one.commit, one.image, (one.image_digest or "-")[:19]]
        for channel in channels:
            data = one.data.get(channel)
            cells.append(f"{data.get('digest', '?')[:12]} ({data.get('files', '?')} files, {data.get('bytes', '?')} "
                         "bytes)" if data else "-")
        cells.append((one.model_sha256 or "not fetched")[:12])
        rows.append(cells)
    header = ["job", "commit", "image", "image digest", *(f"data: {c}" for c in channels), "model sha256"]
    return ["<h2>Where each model came from</h2>",
            "<p class=note>Each channel's digest covers every file's path and content: the same digest, the same "
            "data. The image digest and the model's sha256 are known once the model is fetched (`make fetch`).</p>",
            _table(header, rows, row_id="provenance")]


def _drift(found: list[Job]) -> list[str]:
    """Each fetched model's latest `make drift`: what it was sent against its training data."""
    from pathlib import Path

    rows = []
    for one in found:
        result = one.drift
        if result:
            drifted = [f["name"] for f in result.get("features", []) if f.get("drifted")]
            link = f"<a href=\"{_e(Path(result['path']).as_uri())}\">{_e(result['report'])}</a>"
            rows.append([one.name, result["when"], result["rows"], result["source"],
                         f"{result['share']:.0%} ({', '.join(drifted[:5]) or 'none'})",
                         "DRIFT" if result["drifted"] else "no drift", link])
    parts = ["<h2>Drift</h2>"]
    if not rows:
        return [*parts, "<p class=note id=drift>No model compared with its training data yet (`make drift`).</p>"]
    header = ["job", "compared (UTC)", "rows", "from", "features drifted", "verdict", "report"]
    return [*parts, "<p class=note>The latest <code>make drift</code> of each model: the requests it was sent (or "
            "a file of rows) against its training data, feature by feature.</p>",
            _table(header, rows, {2}, "drift", markup={6})]


def _cost(figures: list, found: list[Job]) -> list[str]:
    import plotly.graph_objects as go

    days = cost_per_day(found)
    rows = [[day, count, money(spent) + (f" + {unknown} unknown" if unknown else "")]
            for day, count, spent, unknown in days]
    parts = ["<h2>Cost per day</h2>"]
    if days:
        figure = go.Figure(go.Bar(x=[d[0] for d in days], y=[d[2] for d in days], text=[money(d[2]) for d in days],
                                  hovertemplate="%{x}: %{text}<extra></extra>"))
        figure.update_layout(title="$ per day (UTC), the jobs above", yaxis_title="$", height=320,
                             margin={"t": 50})
        figure.update_xaxes(type="category")
        parts.append(_chart(figures, figure))
    parts.append(_table(["day (UTC)", "jobs", "cost"], rows, {1, 2}, "cost"))
    return parts
