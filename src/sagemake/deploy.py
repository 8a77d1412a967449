"""Real-time endpoints on SageMaker for a Completed job's model, and the record of what is served or deployed.

Usage: scripts/deploy.py deploy [JOB]   (default: the latest job; ENV other than local)
       scripts/deploy.py undeploy
       scripts/deploy.py endpoints

deploy    CreateModel (the job's image and model.tar.gz, SAGEMAKER_ROLE_ARN;
          reused when sagemake made it), CreateEndpointConfig (ENDPOINT_INSTANCE_TYPE
          x ENDPOINT_INSTANCE_COUNT), then CreateEndpoint, or UpdateEndpoint when
          sagemake's endpoint ENDPOINT_NAME exists already (in place: the old
          configuration serves until the new one is InService, then it is deleted);
          waits for InService and sends one smoke request (a few rows of the
          validation channel). An endpoint of that name that sagemake did not make
          is refused before anything is created. What the endpoint costs an hour is
          said before it is created.
undeploy  deletes the endpoint, its configuration and the models sagemake made
          for it (tagged sagemake:project=PROJECT_NAME), nothing else.
endpoints every model served (make serve), transformed (make transform) or
          deployed, from MODELS_DIR/deployments.jsonl: where, job, the model's
          sha256, image; with ENV other than local, each endpoint's status now.

Exit status: 0 done, 1 the endpoint failed, 2 bad input (ENV=local, a job not
Completed, an endpoint that is not sagemake's), 3 AWS.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sagemake.aws.api import ERRORS, call, failure, plain
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import job_name, job_named
from sagemake.pricing import HOSTING, Prices, rate

RECORDS = "deployments.jsonl"  # in MODELS_DIR: one JSON object a line, appended
VARIANT = "AllTraffic"
SMOKE_ROWS = 3
CONFIG_PART = "config"  # <project>-config-<time><random>: each deploy's endpoint configuration
WAIT_LIMIT_SECONDS = 3600  # SageMaker gives up on an endpoint that cannot start well before this


# --- the record ------------------------------------------------------------------------------------------------


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record(config: Config, event: str, **fields) -> dict:
    """Append what was served, transformed, deployed or undeployed to MODELS_DIR/deployments.jsonl."""
    entry = {"time": now(), "event": event, "env": config.env, **fields}
    path = config.path("MODELS_DIR") / RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:  # one write of one line: appends from several commands do not interleave
        handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return entry


def history(config: Config) -> list[dict]:
    path = config.path("MODELS_DIR") / RECORDS
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:  # a line cut short by a full disk: the others still count
            continue
    return entries


def current(config: Config) -> dict[tuple[str, str], dict]:
    """The last event of each (ENV, endpoint or transform or URL)."""
    latest = {}
    for entry in history(config):
        latest[(entry["env"], entry.get("endpoint") or entry.get("transform") or entry.get("url", ""))] = entry
    return latest


# --- deploying -------------------------------------------------------------------------------------------------


def endpoint_name(config: Config) -> str:
    return config["ENDPOINT_NAME"] or config["PROJECT_NAME"]


def sagemaker_only(executor: Executor, what: str) -> None:
    if executor.kind != "sagemaker":
        raise UserError(f"`make {what}` is for endpoints on SageMaker: use ENV=prod (or another AWS ENV); on this "
                        "machine `make serve` serves the model")


def describe_endpoint(sagemaker, name: str) -> dict | None:
    from sagemake.hosting import missing

    try:
        return plain(sagemaker.describe_endpoint(EndpointName=name))
    except ERRORS as err:
        if missing(err):
            return None
        raise failure(err) from None


def check_ours(executor: Executor, endpoint: dict) -> None:
    from sagemake.hosting import PROJECT_TAG, ours

    config = executor.config
    if not ours(executor.sagemaker, endpoint["EndpointArn"], config["PROJECT_NAME"]):
        raise UserError(f"endpoint {endpoint['EndpointName']} exists and is not sagemake's (no {PROJECT_TAG}="
                        f"{config['PROJECT_NAME']} tag): set ENDPOINT_NAME to another name; sagemake leaves it alone")


def model_sha256(config: Config, executor: Executor, record_: dict) -> str:
    """The sha256 of the job's model.tar.gz: from its fetched manifest, else downloaded and hashed."""
    from sagemake.fetch_model import MANIFEST, sha256

    manifest = config.path("MODELS_DIR") / record_["TrainingJobName"] / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())["artifact"]["sha256"]
    with tempfile.TemporaryDirectory() as scratch:
        return sha256(executor.artifact(record_["ModelArtifacts"]["S3ModelArtifacts"], Path(scratch)))


def smoke_rows(config: Config, hyperparameters: dict) -> bytes | None:
    """A few rows of the validation channel's first file, as CSV without the label (the job's `target`, else a
    column named target) and without the header; None when there is no validation channel."""
    folder = config.path("DATA_DIR") / "validation"
    files = sorted(p for p in folder.rglob("*.csv") if p.is_file()) if folder.is_dir() else []
    if not files:
        return None
    with files[0].open(newline="") as handle:
        lines = list(csv.reader(handle))[:SMOKE_ROWS + 1]
    header = lines[0]
    label = hyperparameters.get("target", "target")
    if label in header:
        keep = [i for i, name in enumerate(header) if name != label]
        rows = [[line[i] for i in keep] for line in lines[1:]]
    else:
        rows = lines[:SMOKE_ROWS]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def wait_in_service(executor: Executor, name: str) -> dict:
    poll, seen, started = executor.config.int("POLL_SECONDS"), None, time.monotonic()
    while True:
        endpoint = describe_endpoint(executor.sagemaker, name)
        if endpoint is None:
            raise JobFailed(f"endpoint {name} vanished while starting: `make endpoints ENV={executor.config.env}`")
        status = endpoint["EndpointStatus"]
        if status != seen:
            say(f"endpoint {name}: {status} [{time.monotonic() - started:.0f} s]")
            seen = status
        if status == "InService":
            return endpoint
        if status in ("Failed", "OutOfService"):
            raise JobFailed(f"endpoint {name} {status}: {endpoint.get('FailureReason') or 'no reason given'}")
        if time.monotonic() - started > WAIT_LIMIT_SECONDS:
            raise JobFailed(f"endpoint {name} is still {status} after {WAIT_LIMIT_SECONDS} s: see the console")
        time.sleep(poll)


def deploy(config: Config, executor: Executor, job: str | None) -> dict:
    from sagemake.hosting import completed_job, ensure_model, hosting_tags

    sagemaker_only(executor, "deploy")
    sagemaker, name = executor.sagemaker, endpoint_name(config)
    training = completed_job(executor, job or executor.latest())
    existing = describe_endpoint(sagemaker, name)
    if existing is not None:
        check_ours(executor, existing)
    instance_type = config["ENDPOINT_INSTANCE_TYPE"] or config["INSTANCE_TYPE"]
    count = config.int("ENDPOINT_INSTANCE_COUNT")
    prices = Prices(config["AWS_REGION"], executor.aws, usage=HOSTING)
    hourly = prices.hourly(instance_type).hourly
    each = "unknown" if hourly is None else f"{rate(hourly)} per instance, {rate(hourly * count)}"
    say(f"endpoint {name}: {count} x {instance_type}, billed every hour until `make undeploy{executor.env_flag()}`; "
        f"price per hour: {each} ({prices.sources()})")
    model = ensure_model(executor, training)["ModelName"]
    job = training["TrainingJobName"]
    config_name = job_name(config["PROJECT_NAME"], CONFIG_PART)
    variant = {"VariantName": VARIANT, "ModelName": model, "InitialInstanceCount": count,
               "InstanceType": instance_type, "InitialVariantWeight": 1.0}
    call(sagemaker.create_endpoint_config, EndpointConfigName=config_name, ProductionVariants=[variant],
         Tags=hosting_tags(config, job))
    say(f"endpoint {name}: configuration {config_name} created")
    if existing is None:
        call(sagemaker.create_endpoint, EndpointName=name, EndpointConfigName=config_name,
             Tags=hosting_tags(config, job))
        say(f"endpoint {name}: created")
    else:
        call(sagemaker.update_endpoint, EndpointName=name, EndpointConfigName=config_name)
        say(f"endpoint {name}: updating in place from {existing['EndpointConfigName']} to {config_name}")
    wait_in_service(executor, name)
    if existing is not None:  # the old configuration no longer serves: sagemake's own is deleted
        _delete(executor, "endpoint_config", existing["EndpointConfigName"])
    smoke(config, executor, name, training)
    entry = record(config, "deploy", endpoint=name, job=job, model=model, endpoint_config=config_name,
                   sha256=model_sha256(config, executor, training),
                   image=training["AlgorithmSpecification"]["TrainingImage"], instance_type=instance_type,
                   instance_count=count, region=executor.region)
    say(f"endpoint {name}: InService with the model of {job} (sha256 {entry['sha256'][:12]}...)")
    return entry


def smoke(config: Config, executor: Executor, name: str, training: dict) -> None:
    body = smoke_rows(config, training.get("HyperParameters", {}))
    if body is None:
        say(f"endpoint {name}: no smoke request: no validation channel in {config['DATA_DIR']}/ to take rows from")
        return
    runtime = executor.aws.client("sagemaker-runtime")
    answer = call(runtime.invoke_endpoint, EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=body)
    text = " ".join(answer["Body"].read().decode(errors="replace").split())
    rows = body.count(b"\n")
    say(f"endpoint {name}: smoke request of {rows} validation row(s) answered: {text[:200]}")


def _delete(executor: Executor, kind: str, name: str) -> bool:
    """Delete sagemake's model or endpoint configuration of that name (one that is gone, or not ours, stays)."""
    from sagemake.hosting import missing, ours

    sagemaker = executor.sagemaker
    describe = {"endpoint_config": ("describe_endpoint_config", "EndpointConfigName", "EndpointConfigArn"),
                "model": ("describe_model", "ModelName", "ModelArn")}[kind]
    try:
        found = getattr(sagemaker, describe[0])(**{describe[1]: name})
    except ERRORS as err:
        if missing(err):
            return False
        raise failure(err) from None
    if not ours(sagemaker, found[describe[2]], executor.config["PROJECT_NAME"]):
        say(f"{kind.replace('_', ' ')} {name} is not sagemake's: left alone")
        return False
    call(getattr(sagemaker, f"delete_{kind}"), **{describe[1]: name})
    say(f"{kind.replace('_', ' ')} {name}: deleted")
    return True


def undeploy(config: Config, executor: Executor) -> None:
    sagemaker_only(executor, "undeploy")
    sagemaker, name = executor.sagemaker, endpoint_name(config)
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
        raise UserError(f"no endpoint named {name} in {executor.region}: nothing to undeploy "
                        f"(`make endpoints{executor.env_flag()}` lists what sagemake deployed)")
    check_ours(executor, endpoint)
    try:
        models = [v["ModelName"] for v in call(sagemaker.describe_endpoint_config,
                                               EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"]]
    except UserError:
        models = []
    call(sagemaker.delete_endpoint, EndpointName=name)
    say(f"endpoint {name}: deleted")
    _delete(executor, "endpoint_config", endpoint["EndpointConfigName"])
    for model in models:
        _delete(executor, "model", model)
    record(config, "undeploy", endpoint=name, endpoint_config=endpoint["EndpointConfigName"], models=models,
           region=executor.region)


def endpoints(config: Config, executor: Executor) -> None:
    rows = [("WHERE", "ENV", "EVENT", "JOB", "SHA256", "IMAGE", "SINCE")]
    live = executor.kind == "sagemaker"
    for (env, where), entry in sorted(current(config).items(), key=lambda item: item[1]["time"], reverse=True):
        event = entry["event"]
        if live and env == config.env and event == "deploy":
            found = describe_endpoint(executor.sagemaker, where)
            event = f"deploy ({found['EndpointStatus'] if found else 'gone'})"
        rows.append((where, env, event, entry.get("job", "-"), (entry.get("sha256") or "-")[:12],
                     entry.get("image", "-"), entry["time"]))
    if len(rows) == 1:
        say(f"nothing served, transformed or deployed yet (the record is {config['MODELS_DIR']}/{RECORDS})")
        return
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    config = resolve()
    executor = for_config(config)
    if command == "deploy" and len(args) <= 1:
        deploy(config, executor, job_named(args[0]) if args else None)
        return Exit.OK
    if command == "undeploy" and not args:
        undeploy(config, executor)
        return Exit.OK
    if command == "endpoints" and not args:
        endpoints(config, executor)
        return Exit.OK
    raise UserError("usage: deploy.py deploy [JOB] | undeploy | endpoints")


if __name__ == "__main__":
    run(main, "deploy")
