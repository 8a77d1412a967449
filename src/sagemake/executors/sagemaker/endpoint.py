"""Real-time endpoints on SageMaker, and the SageMaker model that batch transform and endpoints share.

A model is named after its training job (both are at most 63 characters), so a second transform or deploy of the
same job reuses it; one of that name that sagemake did not make (no sagemake:project tag of this project) is
refused, never reused or deleted. A deploy creates a configuration per deploy and the endpoint (or updates it in
place), waits for InService, sends a smoke request and records what it deployed; undeploy deletes the endpoint
and what sagemake made for it, nothing else.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sagemake.aws.api import AwsUnavailable, call, create, plain
from sagemake.capture import data_capture
from sagemake.cli import AwsError, JobFailed, UserError, say
from sagemake.config import Config
from sagemake.deployments import history, record
from sagemake.executors.interface import Executor
from sagemake.executors.sagemaker import scaling
from sagemake.jobs.endpoint import (
    CONFIG_PART,
    MANIFEST,
    PROJECT_TAG,
    VARIANT,
    WAIT_LIMIT_SECONDS,
    endpoint_name,
    hosting_tags,
    smoke_rows,
)
from sagemake.jobs.training import job_name
from sagemake.pricing import HOSTING, rate


def ours(sagemaker, arn: str, project: str) -> bool:
    """Whether the resource at arn carries this project's sagemake tag."""
    found = call(sagemaker.list_tags, ResourceArn=arn).get("Tags", [])
    return any(t["Key"] == PROJECT_TAG and t["Value"] == project for t in found)


DESCRIBE = {"model": ("describe_model", "ModelName"), "endpoint_config": ("describe_endpoint_config",
             "EndpointConfigName"), "endpoint": ("describe_endpoint", "EndpointName")}


def describe(sagemaker, kind: str, name: str) -> dict | None:
    """DescribeModel, DescribeEndpointConfig or DescribeEndpoint; None when SageMaker knows no such name (its
    ValidationException 'Could not find ...')."""
    operation, field = DESCRIBE[kind]
    return plain(call(getattr(sagemaker, operation), on={"ValidationException": None}, **{field: name}))


def ensure_model(executor, record: dict) -> dict:
    """CreateModel for the training job (its image, its model.tar.gz, SAGEMAKER_ROLE_ARN), tagged; a model of
    that name made by sagemake for this project is reused. Returns DescribeModel's answer."""
    config, sagemaker = executor.config, executor.sagemaker
    name = record["TrainingJobName"]
    found = describe(sagemaker, "model", name)
    if found is not None:
        if not ours(sagemaker, found["ModelArn"], config["PROJECT_NAME"]):
            raise UserError(f"a SageMaker model named {name} exists and is not sagemake's (no {PROJECT_TAG}="
                            f"{config['PROJECT_NAME']} tag): delete or rename it; sagemake leaves it alone")
        say(f"model {name}: made by sagemake already, reused")
        return found
    container = {"Image": record["AlgorithmSpecification"]["TrainingImage"],
                 "ModelDataUrl": record["ModelArtifacts"]["S3ModelArtifacts"]}

    def same() -> bool:
        made = describe(sagemaker, "model", name)
        return made is not None and made["PrimaryContainer"].get("ModelDataUrl") == container["ModelDataUrl"] \
            and ours(sagemaker, made["ModelArn"], config["PROJECT_NAME"])

    try:
        create(sagemaker.create_model, same, f"model {name}", ModelName=name,
               ExecutionRoleArn=config["SAGEMAKER_ROLE_ARN"], PrimaryContainer=container,
               Tags=hosting_tags(config, name))
    except AwsError:
        if not same():
            raise
        say(f"model {name}: made by another deploy of this job at the same moment, reused")
    else:
        say(f"model {name}: created from {container['ModelDataUrl']} with image {container['Image']}")
    return describe(sagemaker, "model", name)


def check_ours(executor: Executor, endpoint: dict) -> None:
    config = executor.config
    if not ours(executor.sagemaker, endpoint["EndpointArn"], config["PROJECT_NAME"]):
        raise UserError(f"endpoint {endpoint['EndpointName']} exists and is not sagemake's (no {PROJECT_TAG}="
                        f"{config['PROJECT_NAME']} tag): set ENDPOINT_NAME to another name; sagemake leaves it alone")


def model_sha256(config: Config, executor: Executor, record_: dict) -> str:
    """The sha256 of the job's model.tar.gz: from its fetched manifest, else downloaded and hashed."""
    from sagemake.archive import sha256

    manifest = config.path("MODELS_DIR") / record_["TrainingJobName"] / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())["artifact"]["sha256"]
    with tempfile.TemporaryDirectory() as scratch:
        return sha256(executor.artifact(record_["ModelArtifacts"]["S3ModelArtifacts"], Path(scratch)))


def wait_in_service(executor: Executor, name: str) -> dict:
    seen = None
    for endpoint, seconds in executor.watch(f"endpoint {name}", lambda: describe(executor.sagemaker, "endpoint", name),
                                            f"make endpoints ENV={executor.config.env}"):
        if endpoint is None:
            raise JobFailed(f"endpoint {name} vanished while starting: `make endpoints ENV={executor.config.env}`")
        status = endpoint["EndpointStatus"]
        if status != seen:
            say(f"endpoint {name}: {status} [{seconds:.0f} s]")
            seen = status
        if status == "InService":
            return endpoint
        if status in ("Failed", "OutOfService"):
            raise JobFailed(f"endpoint {name} {status}: {endpoint.get('FailureReason') or 'no reason given'}")
        if seconds > WAIT_LIMIT_SECONDS:
            raise JobFailed(f"endpoint {name} is still {status} after {WAIT_LIMIT_SECONDS} s: see the console")


BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack")  # an operation under way, InService at its end


def heading(endpoint: dict) -> str:
    """The configuration the endpoint serves, or the one an update under way takes it to: SageMaker keeps the old
    name in EndpointConfigName until the update ends, and names the new one in PendingDeploymentSummary."""
    return (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") or endpoint["EndpointConfigName"]


def under_way(executor: Executor, endpoint: dict, job: str) -> bool:
    """Whether another operation on the endpoint is under way toward this job's model (this deploy then waits for
    it as its own end); one toward another model, a deletion, or a failed endpoint is refused in one line; False when
    none is."""
    name, status, env = endpoint["EndpointName"], endpoint["EndpointStatus"], executor.env_flag()
    if status == "Deleting":
        raise UserError(f"endpoint {name} is Deleting (an undeploy is under way): deploy again once `make "
                        f"endpoints{env}` no longer shows it")
    if status == "Failed":  # SageMaker updates no failed endpoint
        raise UserError(f"endpoint {name} is Failed ({endpoint.get('FailureReason') or 'no reason given'}): `make "
                        f"undeploy{env}` removes it, then deploy again")
    if status not in BUSY:
        return False
    variants = (describe(executor.sagemaker, "endpoint_config", heading(endpoint)) or {}).get(
        "ProductionVariants") or [{}]
    serving = variants[0].get("ModelName")
    if serving != job:
        raise UserError(f"endpoint {name} is {status} to serve {serving} (another deploy is under way): wait "
                        f"until `make endpoints{env}` shows it InService, then deploy again")
    say(f"endpoint {name}: already {status} to serve {job} (another deploy, or an interrupted one): waiting for it")
    return True


def deploy(config: Config, executor: Executor, job: str | None) -> dict:
    """Deploy the job's model. A deploy of the same job under way (another, or an interrupted one) is waited for,
    not repeated; one of another job is refused. Two started at the same moment: the one whose create or update
    SageMaker refuses deletes its own configuration and waits for, or refuses, the other's."""
    sagemaker, name = executor.sagemaker, endpoint_name(config)
    training = executor.completed(job or executor.latest(), "serve")
    job = training["TrainingJobName"]
    existing = describe(sagemaker, "endpoint", name)
    instance_type = config["ENDPOINT_INSTANCE_TYPE"] or config["INSTANCE_TYPE"]
    if existing is not None:
        check_ours(executor, existing)
        if under_way(executor, existing, job):
            scaling.check(config, executor, instance_type, executor.prices())  # registered once it serves
            return finish(config, executor, training, heading(existing), replaced=None)
    count = config.int("ENDPOINT_INSTANCE_COUNT")
    prices = executor.prices()
    hourly = prices.hourly(instance_type, HOSTING).hourly
    each = "unknown" if hourly is None else f"{rate(hourly)} per instance, {rate(hourly * count)}"
    say(f"endpoint {name}: {count} x {instance_type}, billed every hour until `make undeploy{executor.env_flag()}`; "
        f"price per hour: {each} ({prices.sources()})")
    scaling.check(config, executor, instance_type, prices)
    sha256 = model_sha256(config, executor, training)  # before anything is made: it may download the model
    config_name = job_name(config["PROJECT_NAME"], CONFIG_PART)
    variant = {"VariantName": VARIANT, "ModelName": job, "InitialInstanceCount": count,
               "InstanceType": instance_type, "InitialVariantWeight": 1.0}
    beaten = None  # the endpoint as another deploy that got there first left it
    capture = data_capture(config)
    retain = existing is not None and scaling.before_update(executor, existing, instance_type)
    with recorded(config, executor, job, config_name):
        ensure_model(executor, training)
        create(sagemaker.create_endpoint_config, lambda: describe(sagemaker, "endpoint_config", config_name)
               is not None, f"endpoint {name}: configuration {config_name}", EndpointConfigName=config_name,
               ProductionVariants=[variant], Tags=hosting_tags(config, job),
               **({"DataCaptureConfig": capture} if capture else {}))
        say(f"endpoint {name}: configuration {config_name} created; " + (
            f"it captures {capture['InitialSamplingPercentage']}% of the requests and answers to "
            f"{capture['DestinationS3Uri']}/{name}/{VARIANT}/" if capture else "no data capture (CAPTURE_PERCENT=0)"))

        def asked() -> bool:  # the endpoint serves, or heads to, this deploy's configuration
            found = describe(sagemaker, "endpoint", name)
            return found is not None and heading(found) == config_name

        try:
            if existing is None:
                create(sagemaker.create_endpoint, asked, f"endpoint {name}", EndpointName=name,
                       EndpointConfigName=config_name, Tags=hosting_tags(config, job))
                say(f"endpoint {name}: created")
            else:  # not a create, but not idempotent either: a retry after a lost answer hears "in progress"
                create(sagemaker.update_endpoint, asked, f"endpoint {name}: update", EndpointName=name,
                       EndpointConfigName=config_name, **({"RetainAllVariantProperties": True} if retain else {}))
                say(f"endpoint {name}: updating in place from {existing['EndpointConfigName']} to {config_name}")
        except AwsUnavailable:  # no answer: whether it was made is unknown, so what was asked is recorded
            raise
        except AwsError:  # refused: another deploy got there first (or SageMaker said no); this one's is unused
            _delete(executor, "endpoint_config", config_name)
            beaten = describe(sagemaker, "endpoint", name)
            if beaten is None or beaten["EndpointStatus"] not in BUSY:
                raise
    if beaten is not None:
        check_ours(executor, beaten)
        under_way(executor, beaten, job)
        return finish(config, executor, training, heading(beaten), replaced=None, sha256=sha256)
    return finish(config, executor, training, config_name, sha256=sha256,
                  replaced=None if existing is None else existing["EndpointConfigName"])


@contextmanager
def recorded(config: Config, executor: Executor, job: str, config_name: str):
    """From the first create on, whatever ends the deploy (Ctrl-C, SIGTERM, SIGHUP, an AWS error, a failed endpoint):
    what may still run is recorded, with how to finish or undo it. After an error, when SageMaker says that nothing
    runs with this deploy's configuration, the configuration is deleted instead and nothing is recorded."""
    name, env = endpoint_name(config), executor.env_flag()
    try:
        yield
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt) and nothing_runs(executor, name, config_name):
            raise
        stopped = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        record(config, f"deploy {stopped}", endpoint=name, job=job, model=job, endpoint_config=config_name,
               region=executor.region)
        finishing = "" if isinstance(err, JobFailed) else f", `make deploy{env} JOB={job}` finishes it"
        say(f"endpoint {name}: {stopped}; what SageMaker was asked goes on (billed once InService): `make "
            f"endpoints{env}` shows it{finishing}, `make undeploy{env}` removes it")
        raise


def nothing_runs(executor: Executor, name: str, config_name: str) -> bool:
    """After a deploy failed: True when the endpoint neither serves nor heads to its configuration (which is then
    deleted, unused); False when it does, or when AWS cannot say."""
    try:
        endpoint = describe(executor.sagemaker, "endpoint", name)
        if endpoint is not None and heading(endpoint) == config_name:
            return False
        _delete(executor, "endpoint_config", config_name)
        return True
    except UserError:
        return False


def finish(config: Config, executor: Executor, training: dict, config_name: str, replaced: str | None,
           sha256: str | None = None) -> dict:
    """Wait for InService with config_name and record it at once (so a failure of what follows leaves no endpoint
    that no record knows), then delete the configuration it replaced and send the smoke request."""
    name, job = endpoint_name(config), training["TrainingJobName"]
    sha256 = sha256 or model_sha256(config, executor, training)
    with recorded(config, executor, job, config_name):
        endpoint = wait_in_service(executor, name)
        if endpoint["EndpointConfigName"] != config_name:  # an update that failed: SageMaker rolled it back
            raise JobFailed(f"endpoint {name}: the update to {config_name} failed ("
                            f"{endpoint.get('FailureReason') or 'no reason given'}) and was rolled back: it still "
                            f"serves {endpoint['EndpointConfigName']}")
    described = describe(executor.sagemaker, "endpoint_config", config_name)
    (variant,) = described["ProductionVariants"]
    capture = described.get("DataCaptureConfig") or {}
    entry = record(config, "deploy", endpoint=name, job=job, model=job, endpoint_config=config_name,
                   region=executor.region, sha256=sha256, image=training["AlgorithmSpecification"]["TrainingImage"],
                   instance_type=variant["InstanceType"], instance_count=variant["InitialInstanceCount"],
                   capture=f"{capture['DestinationS3Uri']}/{name}/{VARIANT}/" if capture
                   else None)
    if replaced is not None:  # the old configuration no longer serves: sagemake's own is deleted
        _delete(executor, "endpoint_config", replaced)
    scaling.apply(config, executor, name)
    smoke(config, executor, name, training)
    say(f"endpoint {name}: InService with the model of {job} (sha256 {sha256[:12]}...)")
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
    sagemaker = executor.sagemaker
    found = describe(sagemaker, kind, name)
    if found is None:
        return False
    arn = found["ModelArn" if kind == "model" else "EndpointConfigArn"]
    if not ours(sagemaker, arn, executor.config["PROJECT_NAME"]):
        say(f"{kind.replace('_', ' ')} {name} is not sagemake's: left alone")
        return False
    call(getattr(sagemaker, f"delete_{kind}"), **{DESCRIBE[kind][1]: name})
    say(f"{kind.replace('_', ' ')} {name}: deleted")
    return True


def unfinished(config: Config, executor: Executor, name: str) -> list[str]:
    """The endpoint configurations that deploys of the endpoint which failed or were interrupted asked for."""
    return [e["endpoint_config"] for e in history(config) if e.get("endpoint") == name and e.get("region") ==
            executor.region and e["event"] in ("deploy failed", "deploy interrupted")]


def undeploy(config: Config, executor: Executor) -> None:
    sagemaker, name = executor.sagemaker, endpoint_name(config)
    endpoint = describe(sagemaker, "endpoint", name)
    # sagemake's configurations that an unfinished deploy left and no endpoint serves: deleted too
    left = [c for c in unfinished(config, executor, name)
            if not endpoint or c not in (endpoint["EndpointConfigName"], heading(endpoint))]
    if endpoint is None:
        unscaled = scaling.remove(executor, name)  # a registration the endpoint's deletion left
        removed = [c for c in left if _delete(executor, "endpoint_config", c)]
        if not removed and not unscaled:
            raise UserError(f"no endpoint named {name} in {executor.region}: nothing to undeploy "
                            f"(`make endpoints{executor.env_flag()}` lists what sagemake deployed)")
        record(config, "undeploy", endpoint=name, endpoint_configs=removed, region=executor.region)
        return
    check_ours(executor, endpoint)
    for leftover in left:
        _delete(executor, "endpoint_config", leftover)
    try:
        models = [v["ModelName"] for v in call(sagemaker.describe_endpoint_config,
                                               EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"]]
    except UserError:
        models = []
    if scaling.remove(executor, name):  # first, as AWS advises: DeleteEndpoint deregisters it only when allowed to
        say(f"endpoint {name}: autoscaling removed")
    call(sagemaker.delete_endpoint, EndpointName=name)
    say(f"endpoint {name}: deleted")
    _delete(executor, "endpoint_config", endpoint["EndpointConfigName"])
    for model in models:
        _delete(executor, "model", model)
    record(config, "undeploy", endpoint=name, endpoint_config=endpoint["EndpointConfigName"], models=models,
           region=executor.region)


class SageMakerEndpoints:
    """This project's endpoints on SageMaker in AWS_REGION."""

    def __init__(self, executor):
        self.executor, self.config = executor, executor.config

    def deploy(self, job: str | None) -> dict:
        return deploy(self.config, self.executor, job)

    def undeploy(self) -> None:
        undeploy(self.config, self.executor)

    def describe(self, name: str) -> dict | None:
        """DescribeEndpoint's answer (EndpointStatus, each variant's current and desired instance count), or None."""
        return describe(self.executor.sagemaker, "endpoint", name)
