"""Summary: compare what a model was sent (captured requests, or FILE=rows.csv) with its training data; exit 4 on drift

Usage: make drift [JOB=<job>] [SINCE=1d] [FILE=rows.csv] [ENV=...]   (python -m sagemake drift [FILE [SINCE [JOB]]])

The rows are the inputs of the requests captured for the fetched model (JOB, default the latest; with ENV=prod,
the model the endpoint serves, and only what it captured since it took it):
locally those `make serve`, `make predict` and `make transform` captured in MODELS_DIR/<job>/capture/; with
ENV=prod the endpoint's capture files in s3://S3_BUCKET/S3_PREFIX/capture/<ENDPOINT_NAME>/AllTraffic/; SINCE
keeps those of the last 30m, 12h, 1d... FILE=rows.csv (or .json) compares that file's rows instead. They are
tested feature by feature against the model's baseline (its training data, profiled when it was fetched) with
Evidently; its HTML report goes to MODELS_DIR/<job>/drift/, and `make report` links the latest. One line per
drifted feature (test, score, threshold), then a summary line.
Exit status: 0 no drift, 4 at least DRIFT_THRESHOLD percent of the features drifted, 2 bad input, 3 an AWS error.
The first `make drift` makes a virtualenv of its own for Evidently (requirements-drift.txt); no other command needs it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sagemake import capture, jsonfile
from sagemake.cli import Exit, UserError, installed, say
from sagemake.config import DEFAULT_ENV, Config, resolve
from sagemake.contract import serve as serving
from sagemake.executors import for_config
from sagemake.executors.history import LATEST_DRIFT
from sagemake.jobs.endpoint import BASELINE, DRIFT, endpoint_name, request_body
from sagemake.jobs.training import job_named
from sagemake.models import fetched

FEW_ROWS = 30  # fewer rows than this are said to be too few for a verdict


def load_baseline(folder: Path) -> dict:
    path = folder / BASELINE
    if not path.is_file():
        raise UserError(f"the model of {folder.name} has no baseline (fetched before sagemake kept one, or its "
                        f"channel could not be profiled): `make baseline JOB={folder.name}` computes it from the "
                        "job's channels")
    return json.loads(path.read_text())


def rows(body: bytes, content_type: str, features: list[str], where: str) -> list[list[float]]:
    """The rows of a request body (as the model server reads them), in the training features' order; columns that
    differ from the training features are one line naming the difference."""
    if not body.strip():
        raise UserError(f"{where} holds no rows: give rows as /invocations takes them")
    media = serving.media_type(content_type)
    reader = serving.READERS.get(media)
    if reader is None:
        raise UserError(f"{where} is {content_type or 'of no content type'}: only {serving.CSV} and {serving.JSON} "
                        "rows are compared")
    if media == serving.CSV:
        first = next((line for line in body.decode("utf-8-sig", errors="replace").splitlines() if line.strip()), "")
        names = [cell.strip() for cell in first.split(",")]
        if names and not serving.numeric(names[0]) and sorted(names) != sorted(features):
            missing = [name for name in features if name not in names]
            extra = [name for name in names if name not in features]
            raise UserError(f"{where}: its columns differ from the training features: "
                            f"{_listed('missing', missing)}{'; ' if missing and extra else ''}"
                            f"{_listed('not trained on', extra)}: send the training features, by those names")
    try:
        return reader(body, features)
    except serving.Refused as err:
        raise UserError(f"{where}: its rows do not match the training features: {err.sentence}") from None


def _listed(what: str, names: list[str]) -> str:
    return f"{what} {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}" if names else ""


def from_file(file: str, features: list[str]) -> list[list[float]]:
    return rows(*request_body(file), features, f"FILE={file}")


def from_capture(config: Config, folder: Path, since: str, features: list[str],
                 served_since: str | None = None) -> tuple[str, list[list[float]]]:
    """The captured requests' rows since SINCE, and no earlier than served_since (when the endpoint took the model:
    what it captured before was another model's)."""
    start = capture.since(since)
    if served_since:
        taken = datetime.fromisoformat(served_since).astimezone(timezone.utc)
        start = max(start, taken) if start else taken
    where, files = for_config(config).captured(folder, start)
    found: list[list[float]] = []
    for name, text in files:
        for number, event in enumerate(capture.events(name, text, start), 1):
            part = event["captureData"]["endpointInput"]
            found += rows(capture.decode(part), part.get("observedContentType", ""), features,
                          f"captured request {number} of {name}")
    if not found:
        span = f" since {start:%Y-%m-%d %H:%M} UTC (SINCE={since})" if start else ""
        raise UserError(f"no requests captured in {where}{span}: give a longer SINCE, or send the model requests "
                        "first")
    return where, found


def drift(config: Config, file: str, since: str, name: str | None) -> int:
    installed("evidently", "requirements-drift.txt", "make drift")
    served = None
    if not file and name is None and config.env != DEFAULT_ENV:  # the endpoint's model, and what it was sent since
        served = for_config(config).endpoints().serving()
        if served:
            name = served[0]
            say(f"drift: endpoint {endpoint_name(config)} serves the model of {name} since {served[1]}: the "
                "requests it captured since then")
    folder, manifest = fetched(config, name, lambda: for_config(config))
    baseline = load_baseline(folder)
    features = baseline["features"]
    if file:
        where, found = f"FILE={file}", from_file(file, features)
    else:
        where, found = from_capture(config, folder, since, features, served[1] if served else None)
    from sagemake.drift import compare

    stamp = datetime.now(timezone.utc)
    report = folder / DRIFT / f"drift-{stamp:%Y%m%dT%H%M%SZ}.html"
    reference = len(baseline["sample"][features[0]])
    say(f"drift: {len(found)} row(s) from {where} against {reference} training row(s) of {manifest['job_name']}'s "
        "baseline (Evidently)")
    if len(found) < FEW_ROWS:
        say(f"drift: only {len(found)} row(s): too few for a test to tell a change of distribution from chance; "
            "a verdict needs more requests (a longer SINCE) or a larger FILE")
    columns = {feature: [row[i] for row in found] for i, feature in enumerate(features)}
    result = compare(baseline, columns, config.int("DRIFT_THRESHOLD"), report)
    drifted = [feature for feature in result.features if feature.drifted]
    for feature in drifted:
        print(f"drift: {feature.name}: {feature.test} {feature.score:.4g} (threshold {feature.threshold:g})")
    verdict = "DRIFT" if result.drifted else "no drift"
    summary = (f"{len(drifted)} of {len(result.features)} feature(s) drifted ({result.share:.0%}; DRIFT_THRESHOLD="
               f"{config.int('DRIFT_THRESHOLD')}%): {verdict}")
    print(f"drift: {summary}; report {report}")
    jsonfile.write(folder / DRIFT / LATEST_DRIFT, {
        "job": manifest["job_name"], "when": stamp.isoformat(timespec="seconds"), "rows": len(found),
        "source": where, "share": result.share, "drifted": result.drifted, "threshold": config.int("DRIFT_THRESHOLD"),
        "report": report.name, "summary": summary,
        "features": [vars(feature) for feature in result.features]})
    return Exit.DRIFT if result.drifted else Exit.OK


def main(argv: list[str]) -> int:
    if len(argv) > 3:
        raise UserError("usage: make drift [JOB=<job>] [SINCE=1d] [FILE=rows.csv]")
    file, since, job = (*argv, "", "", "")[:3]
    return drift(resolve(), file, since, job_named(job) if job else None)

