"""Endpoints on SageMaker against the emulator: deploy (model, configuration, endpoint, InService, a smoke request),
a second deploy updating the endpoint in place, undeploy deleting what sagemake made and nothing else, the refusals,
and the deployment record that `make endpoints` shows.

moto has no UpdateEndpoint: the test plays it in moto's own state (the endpoint takes the new configuration) and
records the calls. Its InvokeEndpoint answers canned data, so the test reads the request moto recorded.
"""

import hashlib
import json
import signal
import subprocess

import pytest
from conftest import ROOT, sagemake
from emulator import ACCOUNT, REGION, ROLE, backend, client, make_bucket, model_archive, settings

from sagemake.cli import JobFailed, UserError
from sagemake.config import resolve
from sagemake.deployments import history
from sagemake.executors.sagemaker.endpoint import deploy, undeploy
from sagemake.targets.endpoints import endpoints

IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/train-image:t1"
JOBS = ("sagemake-example-abc1234-261202-101500-123k3x9q", "sagemake-example-def5678-261202-111500-456k3x9q")


@pytest.fixture
def prod(aws, example_data, tmp_path, monkeypatch):
    """Two Completed training jobs with their model.tar.gz in S3, settings for ENV=prod, UpdateEndpoint played."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    make_bucket()
    s3, sagemaker = client("s3"), client("sagemaker")
    archives = {}
    for job in JOBS:
        archives[job] = model_archive({"model.joblib": job.encode()})
        s3.put_object(Bucket="train-bucket", Key=f"sagemake-example/output/{job}/output/model.tar.gz",
                      Body=archives[job])
        sagemaker.create_training_job(
            TrainingJobName=job, RoleArn=ROLE, HyperParameters={"target": "target"},
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://train-bucket/sagemake-example/output"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            StoppingCondition={"MaxRuntimeInSeconds": 60})
    updates = []

    def update_endpoint(self):
        params = json.loads(self.body)
        updates.append(params)
        sagemaker_backend = self.sagemaker_backend
        endpoint = sagemaker_backend.endpoints[params["EndpointName"]]
        if endpoint.endpoint_status != "InService":  # as SageMaker refuses it
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        configuration = sagemaker_backend.endpoint_configs[params["EndpointConfigName"]]
        endpoint.endpoint_config_name = configuration.endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(configuration.production_variants)
        return json.dumps({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    env = {**settings(), "ENV": "prod", "DATA_DIR": str(example_data), "MODELS_DIR": str(tmp_path / "models"),
           "ENDPOINT_INSTANCE_TYPE": "ml.c5.xlarge", "ENDPOINT_INSTANCE_COUNT": "2"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = resolve(env="prod")
    return config, archives, updates


def executor(config):
    from sagemake.executors.sagemaker.executor import SageMakerExecutor

    return SageMakerExecutor(config)


INVOCATIONS: list[dict] = []


@pytest.fixture(autouse=True)
def recorded_invocations(monkeypatch):
    """Every InvokeEndpoint request moto receives, with its path (moto answers canned data and keeps no name)."""
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    original = SageMakerRuntimeResponse.invoke_endpoint
    INVOCATIONS.clear()

    def recording(self):
        body = self.body.decode() if isinstance(self.body, bytes) else self.body
        INVOCATIONS.append({"path": self.path, "ContentType": self.headers.get("Content-Type"),
                            "Accept": self.headers.get("Accept"), "Body": body})
        return original(self)

    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", recording)


def invocations(endpoint: str) -> list[dict]:
    """The InvokeEndpoint requests moto received for the endpoint."""
    return [i for i in INVOCATIONS if i["path"] == f"/endpoints/{endpoint}/invocations"]


def tags(sagemaker, arn) -> dict:
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def test_deploy_then_update_in_place_then_undeploy_what_sagemake_made(prod, example_data, capsys, price_list):
    config, archives, updates = prod
    sagemaker = client("sagemaker")
    foreign = "someone-elses-model"  # in the same account: undeploy must leave it
    sagemaker.create_model(ModelName=foreign, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})

    price_list.prices[("EU (Frankfurt)", "EUC1-Host:ml.c5.xlarge")] = "0.2380000000"  # the stand-in's own figure
    first = deploy(config, executor(config), JOBS[0])
    endpoint = sagemaker.describe_endpoint(EndpointName="sagemake-example")
    assert endpoint["EndpointStatus"] == "InService"
    assert tags(sagemaker, endpoint["EndpointArn"])["sagemake:project"] == "sagemake-example"
    configuration = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = configuration["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == \
        (JOBS[0], "ml.c5.xlarge", 2)
    model = sagemaker.describe_model(ModelName=JOBS[0])
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["ModelDataUrl"] == \
        f"s3://train-bucket/sagemake-example/output/{JOBS[0]}/output/model.tar.gz"
    assert tags(sagemaker, model["ModelArn"])["sagemake:job"] == JOBS[0]
    said = capsys.readouterr().err
    assert "endpoint sagemake-example: 2 x ml.c5.xlarge, billed every hour" in said
    assert "price per hour: $0.238 per instance, $0.476 (prices for eu-central-1: AWS Price List API, " in said
    assert price_list.requests[-1][1]["Filters"][1] == {"Type": "TERM_MATCH", "Field": "usagetype",
                                                         "Value": "EUC1-Host:ml.c5.xlarge"}
    assert said.index("price per hour") < said.index("endpoint sagemake-example: created")
    # One smoke request: the first validation rows, without the label column or a header.
    (smoke,) = invocations("sagemake-example")
    lines = (example_data / "validation/validation.csv").read_text().splitlines()
    header = lines[0].split(",")
    label = header.index("target")
    want = "".join(",".join(c for i, c in enumerate(line.split(",")) if i != label) + "\n" for line in lines[1:4])
    assert (smoke["Body"], smoke["ContentType"], smoke["Accept"]) == (want, "text/csv", "text/csv")
    assert first["sha256"] == hashlib.sha256(archives[JOBS[0]]).hexdigest() and first["image"] == IMAGE

    second = deploy(config, executor(config), JOBS[1])
    assert [u["EndpointName"] for u in updates] == ["sagemake-example"]
    assert updates[0]["EndpointConfigName"] == second["endpoint_config"] != first["endpoint_config"]
    endpoint = sagemaker.describe_endpoint(EndpointName="sagemake-example")
    assert endpoint["EndpointConfigName"] == second["endpoint_config"]
    names = [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]]
    assert names == [second["endpoint_config"]]  # the old configuration went once the new one served
    assert [i["Body"] for i in invocations("sagemake-example")] == [want, want]  # a smoke request after the update

    undeploy(config, executor(config))
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]) == sorted([foreign, JOBS[0]])
    # JOBS[0]'s model no longer served by the endpoint is left for its transforms; the foreign one is untouched.

    events = [(e["event"], e.get("job")) for e in history(config)]
    assert events == [("deploy", JOBS[0]), ("deploy", JOBS[1]), ("undeploy", None)]
    endpoints(config, executor(config))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["WHERE", "ENV", "EVENT", "INSTANCES", "DESIRED", "JOB", "SHA256", "IMAGE", "SINCE"]
    assert out[1].split()[:3] == ["sagemake-example", "prod", "undeploy"]


def test_an_endpoint_that_is_not_ours_is_refused_before_anything_is_made(prod):
    config, _, updates = prod
    sagemaker = client("sagemaker")
    sagemaker.create_model(ModelName="theirs", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sagemaker.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[
        {"VariantName": "v", "ModelName": "theirs", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="sagemake-example", EndpointConfigName="theirs")
    with pytest.raises(UserError, match="endpoint sagemake-example exists and is not sagemake's"):
        deploy(config, executor(config), JOBS[0])
    with pytest.raises(UserError, match="endpoint sagemake-example exists and is not sagemake's"):
        undeploy(config, executor(config))
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["theirs"]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["theirs"]
    assert sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointConfigName"] == "theirs"
    assert updates == [] and invocations("sagemake-example") == []


def test_a_job_that_is_not_completed_is_refused(prod):
    config, _, _ = prod
    job = backend().training_jobs[JOBS[0]]
    job.training_job_status, job.failure_reason = "Failed", "AlgorithmError: out of memory"
    with pytest.raises(UserError, match=f"job {JOBS[0]} is Failed: AlgorithmError: out of memory; only a "
                                        "Completed job has a model to serve"):
        deploy(config, executor(config), JOBS[0])
    assert client("sagemaker").list_endpoints()["Endpoints"] == []


def test_undeploy_with_nothing_deployed_and_deploy_locally_say_so(prod, tmp_path):
    config, _, _ = prod
    with pytest.raises(UserError, match=f"no endpoint named sagemake-example in {REGION}: nothing to undeploy"):
        undeploy(config, executor(config))
    from sagemake.executors.local.executor import LocalExecutor

    local = resolve(env="local", environ={"JOBS_DIR": str(tmp_path)})
    refused = "`make deploy` and `make undeploy` are for endpoints on SageMaker: use ENV=prod"
    with pytest.raises(UserError, match=refused):
        LocalExecutor(local).endpoints().deploy(None)


def test_an_interrupted_deploy_records_what_it_made_and_says_how_to_finish_or_undo_it(prod, monkeypatch, capsys):
    """Ctrl-C (SIGTERM, SIGHUP) while the endpoint starts: SageMaker goes on, so the record says what was asked and
    the words say how to finish (deploy again) or undo (undeploy) it; a deploy again then finishes it."""
    from sagemake.executors.sagemaker import endpoint

    config, _, _ = prod

    def interrupted(executor, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(endpoint, "wait_in_service", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deploy(config, executor(config), JOBS[0])
    (entry,) = history(config)
    assert entry["event"] == "deploy interrupted" and entry["endpoint"] == "sagemake-example"
    assert entry["job"] == JOBS[0] and entry["model"] == JOBS[0] and entry["endpoint_config"].startswith(
        "sagemake-example-config-")
    said = capsys.readouterr().err
    assert ("endpoint sagemake-example: interrupted; what SageMaker was asked goes on (billed once InService): "
            f"`make endpoints ENV=prod` shows it, `make deploy ENV=prod JOB={JOBS[0]}` finishes it, "
            "`make undeploy ENV=prod` removes it") in said
    endpoints(config, executor(config))
    assert "deploy interrupted (InService)" in capsys.readouterr().out
    monkeypatch.undo()


def endpoint_state(name="sagemake-example"):
    """moto's endpoint, to play what another deploy does to it."""
    return backend().endpoints[name]


def in_service_when_asked_again(client_, name="sagemake-example") -> None:
    """SageMaker finishing the operation under way, at the pace of the deploy that waits (never of the clock): once
    the client's DescribeEndpoint was answered twice from now, the endpoint is InService for the next ask. A deploy
    that looks once and decides (refuses, or updates in place) never sees it."""
    answered = []

    def count(**_):
        answered.append(1)
        if len(answered) == 2 and name in backend().endpoints:
            endpoint_state(name).endpoint_status = "InService"

    client_.meta.events.register("after-call.sagemaker.DescribeEndpoint", count)


def other_deploy(sagemaker, job: str, status: str, config_name="sagemake-example-config-other") -> str:
    """What another deploy of `job` leaves while it waits: sagemake's configuration and endpoint, `status`."""
    tags = [{"Key": "sagemake:project", "Value": "sagemake-example"}, {"Key": "sagemake:job", "Value": job}]
    if job not in [m["ModelName"] for m in sagemaker.list_models()["Models"]]:
        sagemaker.create_model(ModelName=job, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}, Tags=tags)
    sagemaker.create_endpoint_config(EndpointConfigName=config_name, Tags=tags, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": job, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    if "sagemake-example" in backend().endpoints:
        backend().endpoints["sagemake-example"].endpoint_config_name = config_name
    else:
        sagemaker.create_endpoint(EndpointName="sagemake-example", EndpointConfigName=config_name, Tags=tags)
    endpoint_state().endpoint_status = status
    return config_name


def config_names(sagemaker) -> list[str]:
    return sorted(c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"])


def test_a_deploy_of_the_same_job_under_way_is_waited_for_not_repeated(prod, capsys):
    """An endpoint Creating with this job's model (another deploy, or an interrupted one): the deploy waits for it
    and records it; nothing new is created, nothing is left over."""
    config, _, updates = prod
    sagemaker = client("sagemaker")
    theirs = other_deploy(sagemaker, JOBS[0], "Creating")
    ours = executor(config)
    in_service_when_asked_again(ours.sagemaker)
    entry = deploy(config, ours, JOBS[0])
    assert entry["event"] == "deploy" and entry["endpoint_config"] == theirs and entry["job"] == JOBS[0]
    assert (entry["instance_type"], entry["instance_count"]) == ("ml.m5.large", 1)  # what SageMaker serves
    assert config_names(sagemaker) == [theirs] and updates == []
    said = capsys.readouterr().err
    assert (f"endpoint sagemake-example: already Creating to serve {JOBS[0]} (another deploy, or an interrupted "
            "one): waiting for it") in said
    assert "price per hour" not in said  # nothing of this deploy's own is billed


@pytest.mark.parametrize("status", ["Creating", "Updating", "Deleting"])
def test_a_deploy_of_another_job_under_way_is_refused_before_anything_is_made(prod, status):
    config, _, updates = prod
    sagemaker = client("sagemaker")
    theirs = other_deploy(sagemaker, JOBS[1], status)
    ours = executor(config)
    in_service_when_asked_again(ours.sagemaker)  # a deploy that waited for it instead would go on, and fail below
    refused = ("is Deleting (an undeploy is under way): deploy again once `make endpoints ENV=prod` no longer "
               "shows it") if status == "Deleting" else (
        f"is {status} to serve {JOBS[1]} (another deploy is under way): wait until `make endpoints ENV=prod` shows it "
        "InService, then deploy again")
    with pytest.raises(UserError) as caught:
        deploy(config, ours, JOBS[0])
    assert str(caught.value) == f"endpoint sagemake-example {refused}"
    assert config_names(sagemaker) == [theirs] and updates == []
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [JOBS[1]]
    assert history(config) == []


@pytest.mark.parametrize("existing", [None, "InService"])
@pytest.mark.parametrize("same_job", [True, False])
def test_two_deploys_at_the_same_moment_leave_one_configuration_and_no_orphan(prod, existing, same_job):
    """Another deploy's create (or update) lands between this deploy's look at the endpoint and its own: SageMaker
    refuses this one's, which deletes its own configuration, then waits for the other (same job) or refuses."""
    config, _, updates = prod
    sagemaker = client("sagemaker")
    if existing:
        first = deploy(config, executor(config), JOBS[1])
    other = JOBS[0] if same_job else JOBS[1]
    raced = []

    def beaten(**_):  # the other deploy's request arrives just before this one's
        if not raced:
            raced.append(other_deploy(sagemaker, other, "Updating" if existing else "Creating",
                                      config_name="sagemake-example-config-raced"))
            if same_job:
                in_service_when_asked_again(ours.sagemaker)

    ours = executor(config)
    operation = "UpdateEndpoint" if existing else "CreateEndpoint"
    ours.sagemaker.meta.events.register(f"before-call.sagemaker.{operation}", beaten)
    if same_job:
        entry = deploy(config, ours, JOBS[0])
        assert entry["endpoint_config"] == raced[0] and entry["event"] == "deploy"
    else:
        with pytest.raises(UserError, match=f"endpoint sagemake-example is (Creating|Updating) to serve {JOBS[1]} "
                                            r"\(another deploy is under way\)"):
            deploy(config, ours, JOBS[0])
    assert raced
    kept = [raced[0]] + ([first["endpoint_config"]] if existing else [])  # the old one is the other deploy's to delete
    assert config_names(sagemaker) == sorted(kept)  # this deploy's own configuration did not stay
    assert sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointConfigName"] == raced[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_deploy_stopped_by_a_signal_while_the_endpoint_starts_is_recorded_and_finished_by_the_next(
        prod, monkeypatch, signum):
    """`make deploy ENV=prod` as a process, stopped by Ctrl-C, SIGTERM (a CI run cancelled) or SIGHUP (a closed
    terminal) while the endpoint is Creating: it exits 130, records what it asked and says how to finish or undo it;
    the next deploy of the same job waits for that endpoint instead of asking again."""
    from moto.sagemaker.responses import SageMakerResponse

    config, _, updates = prod
    created = SageMakerResponse.create_endpoint

    def creating(self):  # SageMaker takes minutes to start an endpoint
        answer = created(self)
        endpoint_state(json.loads(self.body)["EndpointName"]).endpoint_status = "Creating"
        return answer

    monkeypatch.setattr(SageMakerResponse, "create_endpoint", creating)
    # Ctrl-C reaches the child as from a terminal even when pytest runs in the background (see test_aws.py).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([*sagemake(ROOT), "deploy", JOBS[0]], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if ignored is None else ignored)
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "endpoint sagemake-example: Creating" in line:
                break
        process.send_signal(signum)
        lines.append(process.communicate(timeout=60)[1])
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    said = "".join(lines)
    assert process.returncode == 130, said
    assert ("endpoint sagemake-example: interrupted; what SageMaker was asked goes on (billed once InService): "
            f"`make endpoints ENV=prod` shows it, `make deploy ENV=prod JOB={JOBS[0]}` finishes it, "
            "`make undeploy ENV=prod` removes it") in said and "Traceback" not in said
    (entry,) = history(config)
    sagemaker = client("sagemaker")
    assert entry["event"] == "deploy interrupted" and config_names(sagemaker) == [entry["endpoint_config"]]
    assert sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointStatus"] == "Creating"

    ours = executor(config)
    in_service_when_asked_again(ours.sagemaker)
    finished = deploy(config, ours, JOBS[0])
    assert finished["endpoint_config"] == entry["endpoint_config"] and updates == []
    assert config_names(sagemaker) == [entry["endpoint_config"]]  # nothing asked twice
    assert [e["event"] for e in history(config)] == ["deploy interrupted", "deploy"]


@pytest.mark.parametrize(("fault", "kind"), [("CreateEndpoint", "closed"), ("CreateEndpoint", "500"),
                                             ("POST /endpoints/sagemake-example/invocations", "closed")],
                         ids=["lost_create", "failed_create", "smoke_request"])
def test_a_deploy_that_fails_midway_leaves_nothing_no_record_knows(prod, aws, monkeypatch, capsys, fault, kind):
    """With no attempt left: the answer to CreateEndpoint lost (the endpoint made) is met as the endpoint made; a
    smoke request failing once the endpoint serves ends the command in one line, with the deploy recorded (so `make
    endpoints` shows it and `make undeploy` removes it); a CreateEndpoint refused by AWS's fault, when SageMaker then
    says no endpoint was made, ends in one line with the unused configuration deleted and nothing to record."""
    from faultproxy import FaultProxy

    from sagemake.aws.api import AwsUnavailable

    config, _, _ = prod
    with FaultProxy(aws, once={fault: kind}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        if kind == "closed" and fault == "CreateEndpoint":
            deploy(config, executor(config), JOBS[0])
        else:
            with pytest.raises(AwsUnavailable):
                deploy(config, executor(config), JOBS[0])
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    assert proxy.once == {}  # the fault happened
    sagemaker = client("sagemaker")
    configurations = [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]]
    endpoints = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    said = capsys.readouterr().err
    if kind == "500":
        assert endpoints == [] and configurations == [] and history(config) == []
        assert "goes on" not in said
        return
    (asked,) = configurations
    assert endpoints == ["sagemake-example"]
    (entry,) = history(config)
    assert entry["event"] == "deploy"
    assert (entry["endpoint"], entry["endpoint_config"], entry["model"], entry["job"]) == \
        ("sagemake-example", asked, JOBS[0], JOBS[0])
    if fault == "CreateEndpoint":
        assert "endpoint sagemake-example: an attempt whose answer was lost created it" in said
    undeploy(config, executor(config))
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_an_update_that_fails_and_is_rolled_back_is_not_recorded_as_deployed(prod, monkeypatch):
    """SageMaker rolls a failed update back: the endpoint is InService on the configuration it had, with a failure
    reason. The deploy ends in one line, records nothing as deployed, keeps what serves, deletes its own."""
    from moto.sagemaker.responses import SageMakerResponse

    config, _, _ = prod
    sagemaker = client("sagemaker")
    first = deploy(config, executor(config), JOBS[0])

    def rolled_back(self):
        endpoint = self.sagemaker_backend.endpoints[json.loads(self.body)["EndpointName"]]
        endpoint.failure_reason = "The primary container did not pass the ping health check."
        return json.dumps({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", rolled_back, raising=False)
    with pytest.raises(JobFailed) as failed:
        deploy(config, executor(config), JOBS[1])
    assert str(failed.value).startswith("endpoint sagemake-example: the update to sagemake-example-config-")
    assert str(failed.value).endswith(" failed (The primary container did not pass the ping health check.) and was "
                                      f"rolled back: it still serves {first['endpoint_config']}")
    assert config_names(sagemaker) == [first["endpoint_config"]]  # what serves is kept, the unused one deleted
    assert [e["event"] for e in history(config)] == ["deploy"]


def test_a_create_sagemaker_refuses_leaves_nothing_and_records_nothing(prod, monkeypatch, capsys):
    """A refusal that is no race (an account without the endpoint quota): one line, the unused configuration
    deleted, nothing recorded, no "goes on" said."""
    from moto.sagemaker.exceptions import SagemakerClientError
    from moto.sagemaker.responses import SageMakerResponse

    class ResourceLimitExceeded(SagemakerClientError):
        code = "ResourceLimitExceeded"

    def refused(self):
        raise ResourceLimitExceeded("The account-level service limit 'ml.c5.xlarge for endpoint usage' is 0 Instances")

    monkeypatch.setattr(SageMakerResponse, "create_endpoint", refused)
    config, _, _ = prod
    with pytest.raises(UserError, match="ResourceLimitExceeded"):
        deploy(config, executor(config), JOBS[0])
    assert config_names(client("sagemaker")) == [] and history(config) == []
    assert "goes on" not in capsys.readouterr().err


def test_a_failed_endpoint_is_refused_with_how_to_start_again(prod):
    config, _, updates = prod
    sagemaker = client("sagemaker")
    theirs = other_deploy(sagemaker, JOBS[0], "Failed")
    endpoint_state().failure_reason = "Image not found"
    with pytest.raises(UserError) as refused:
        deploy(config, executor(config), JOBS[0])
    assert str(refused.value) == ("endpoint sagemake-example is Failed (Image not found): `make undeploy ENV=prod` "
                                  "removes it, then deploy again")
    assert config_names(sagemaker) == [theirs] and updates == []


def test_an_update_under_way_is_known_by_its_pending_configuration():
    """While an update runs, SageMaker's EndpointConfigName is still the old one; the new one is pending."""
    from sagemake.executors.sagemaker.endpoint import heading

    assert heading({"EndpointConfigName": "old"}) == "old"
    assert heading({"EndpointConfigName": "old", "PendingDeploymentSummary": {"EndpointConfigName": "new"}}) == "new"


def test_a_lost_answer_to_update_endpoint_is_met_as_the_update_made(prod, aws, monkeypatch, capsys):
    """UpdateEndpoint is not idempotent: when its first answer is lost after SageMaker began the update, the retry
    hears "in progress". The deploy sees the endpoint heading to its configuration and follows it."""
    from faultproxy import FaultProxy
    from moto.sagemaker.responses import SageMakerResponse

    config, _, _ = prod
    sagemaker = client("sagemaker")
    first = deploy(config, executor(config), JOBS[0])
    played = SageMakerResponse.update_endpoint

    def updating(self):  # as SageMaker: the update runs for a while
        answer = played(self)
        endpoint_state().endpoint_status = "Updating"
        return answer

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", updating, raising=False)
    with FaultProxy(aws, once={"UpdateEndpoint": "closed"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        ours = executor(config)
        in_service_when_asked_again(ours.sagemaker)
        second = deploy(config, ours, JOBS[1])
    assert proxy.once == {}  # the answer was lost
    assert "endpoint sagemake-example: update: an attempt whose answer was lost created it" in capsys.readouterr().err
    assert second["event"] == "deploy" and second["job"] == JOBS[1]
    assert config_names(sagemaker) == [second["endpoint_config"]] != [first["endpoint_config"]]
    assert sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointConfigName"] == \
        second["endpoint_config"]


def test_an_endpoint_that_fails_to_start_is_recorded_with_how_to_remove_it(prod, monkeypatch, capsys):
    """The endpoint was made and went Failed: it is recorded as a failed deploy (`make endpoints` shows it) and the
    line says `make undeploy` removes it, never that deploying again finishes it."""
    from moto.sagemaker.responses import SageMakerResponse

    created = SageMakerResponse.create_endpoint

    def failing(self):
        answer = created(self)
        endpoint_state().endpoint_status, endpoint_state().failure_reason = "Failed", "Image not found"
        return answer

    monkeypatch.setattr(SageMakerResponse, "create_endpoint", failing)
    config, _, _ = prod
    with pytest.raises(JobFailed, match="endpoint sagemake-example Failed: Image not found"):
        deploy(config, executor(config), JOBS[0])
    (entry,) = history(config)
    assert entry["event"] == "deploy failed" and entry["endpoint_config"] in config_names(client("sagemaker"))
    said = capsys.readouterr().err
    assert ("endpoint sagemake-example: failed; what SageMaker was asked goes on (billed once InService): `make "
            "endpoints ENV=prod` shows it, `make undeploy ENV=prod` removes it") in said
    undeploy(config, executor(config))
    assert config_names(client("sagemaker")) == [] and client("sagemaker").list_endpoints()["Endpoints"] == []


def test_undeploy_removes_what_a_deploy_interrupted_before_its_endpoint_left(prod, capsys):
    """Ctrl-C between the configuration and the endpoint: the configuration is recorded, and `make undeploy`, with
    no endpoint there, removes it."""
    config, _, _ = prod

    def interrupted(**_):
        raise KeyboardInterrupt

    ours = executor(config)
    ours.sagemaker.meta.events.register("before-call.sagemaker.CreateEndpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deploy(config, ours, JOBS[0])
    (entry,) = history(config)
    assert entry["event"] == "deploy interrupted" and config_names(client("sagemaker")) == [entry["endpoint_config"]]
    undeploy(config, executor(config))
    assert config_names(client("sagemaker")) == [] and history(config)[-1]["event"] == "undeploy"
