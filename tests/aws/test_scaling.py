"""Endpoint autoscaling against the emulator: `make deploy ENV=prod` with ENDPOINT_MAX_INSTANCES registers the
variant with Application Auto Scaling (read back from moto's), a redeploy updates or removes the registration,
`make undeploy` removes it (also with the endpoint gone, also when an answer is lost), and the refusals.

moto's Service Quotas knows no SageMaker quota (ListServiceQuotas is not implemented): the test plays it in moto's
own server, with quotas of its choosing, as test_deploy plays UpdateEndpoint.
"""

import json
import subprocess

import pytest
from conftest import ROOT, sagemake
from emulator import backend, client
from test_deploy import JOBS, executor, prod  # noqa: F401  (prod is a fixture)

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors.sagemaker.endpoint import deploy, undeploy
from sagemake.targets.endpoints import endpoints

RESOURCE = "endpoint/sagemake-example/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@pytest.fixture
def quotas(monkeypatch):
    """Service Quotas for SageMaker, played in moto: {quota name: value} applied to the account, and AWS's defaults,
    answered a page of MaxResults at a time as AWS does."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    played = {"applied": {}, "defaults": {}}

    def lister(which):
        def listing(self):
            params = json.loads(self.body)
            assert params["ServiceCode"] == "sagemaker"
            quotas = [{"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": f"L-{i:08d}", "Value": value}
                      for i, (name, value) in enumerate(played[which].items())]
            start, size = int(params.get("NextToken") or 0), params.get("MaxResults") or 2
            page = {"Quotas": quotas[start:start + size]}
            if start + size < len(quotas):
                page["NextToken"] = str(start + size)
            return json.dumps(page)
        return listing

    monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", lister("applied"), raising=False)
    monkeypatch.setattr(ServiceQuotasResponse, "list_aws_default_service_quotas", lister("defaults"), raising=False)
    played["defaults"].update({"ml.m5.large for training job usage": 20.0, "ml.c5.xlarge for endpoint usage": 4.0,
                               "ml.c5.xlarge for training job usage": 10.0})
    return played


def settings(monkeypatch, **values):
    """The prod fixture's settings with these set (None: unset): the config a `make deploy ENV=prod ...` resolves."""
    for key, value in values.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    return resolve(env="prod")


def scaling():
    """The emulator's scalable targets and scaling policies of the endpoint's variant."""
    autoscaling = client("application-autoscaling")
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[RESOURCE],
                                                    ScalableDimension=DIMENSION)["ScalableTargets"]
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=RESOURCE,
                                                     ScalableDimension=DIMENSION)["ScalingPolicies"]
    return targets, policies


def span_and_target() -> tuple:
    (target,), (policy,) = scaling()
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (target["ResourceId"], target["ScalableDimension"], policy["PolicyType"]) == \
        (RESOURCE, DIMENSION, "TargetTrackingScaling")
    metric = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert tracking["PredefinedMetricSpecification"] == metric
    return target["MinCapacity"], target["MaxCapacity"], tracking["TargetValue"]


def test_deploy_registers_autoscaling_a_redeploy_updates_or_removes_it_and_undeploy_removes_it(
        prod, quotas, monkeypatch, capsys, price_list):  # noqa: F811
    config, _, _ = prod  # ml.c5.xlarge, 2 instances
    price_list.prices[("EU (Frankfurt)", "EUC1-Host:ml.c5.xlarge")] = "0.2380000000"
    quotas["applied"]["ml.c5.xlarge for endpoint usage"] = 6.0  # raised above AWS's default of 4 for this account
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="5", ENDPOINT_TARGET_INVOCATIONS="120")
    deploy(config, executor(config), JOBS[0])
    assert span_and_target() == (2, 5, 120.0)
    said = capsys.readouterr().err
    worst = ("endpoint sagemake-example: autoscaling from 2 to 5 x ml.c5.xlarge at 120 invocations per instance a "
             "minute; price per hour at 5: $1.19")
    assert worst in said and said.index(worst) < said.index("model sagemake-example-abc1234")  # before anything
    assert "endpoint sagemake-example: scales from 2 to 5 instances to keep 120 invocations per instance" in said

    # Under load, Application Auto Scaling raises the variant's desired count; SageMaker starts the instances.
    backend().endpoints["sagemake-example"].production_variants[0]["DesiredInstanceCount"] = 4
    endpoints(config, executor(config))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["WHERE", "ENV", "EVENT", "INSTANCES", "DESIRED", "JOB", "SHA256", "IMAGE", "SINCE"]
    assert out[1].split()[:7] == ["sagemake-example", "prod", "deploy", "(InService)", "2", "4", JOBS[0]]

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3", ENDPOINT_TARGET_INVOCATIONS="47.5")
    deploy(config, executor(config), JOBS[1])
    assert span_and_target() == (2, 3, 47.5)

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="2")  # the initial count: no autoscaling
    deploy(config, executor(config), JOBS[0])
    assert scaling() == ([], [])
    assert "endpoint sagemake-example: autoscaling removed" in capsys.readouterr().err

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="4", ENDPOINT_TARGET_INVOCATIONS=None)
    deploy(config, executor(config), JOBS[0])
    assert span_and_target() == (2, 4, 70.0)  # ENDPOINT_TARGET_INVOCATIONS's default
    undeploy(config, executor(config))
    assert scaling() == ([], []) and client("sagemaker").list_endpoints()["Endpoints"] == []


def test_a_deploy_without_autoscaling_asks_nothing_of_it(prod, monkeypatch, capsys):  # noqa: F811
    """No ENDPOINT_MAX_INSTANCES: no Service Quotas question (moto would answer 500), no registration."""
    config, _, _ = prod
    deploy(config, executor(config), JOBS[0])
    assert scaling() == ([], [])
    assert "autoscaling" not in capsys.readouterr().err


def test_undeploy_removes_a_registration_the_gone_endpoint_left_and_is_then_done(prod, quotas, monkeypatch):  # noqa: F811
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3")
    deploy(config, executor(config), JOBS[0])
    sagemaker = client("sagemaker")
    sagemaker.delete_endpoint(EndpointName="sagemake-example")  # deleted by hand, its registration left behind
    assert scaling()[0]
    undeploy(config, executor(config))
    assert scaling() == ([], [])
    with pytest.raises(UserError, match="no endpoint named sagemake-example in .*: nothing to undeploy"):
        undeploy(config, executor(config))


@pytest.mark.parametrize("operation", ["DeleteScalingPolicy", "DeregisterScalableTarget"])
def test_a_lost_answer_while_undeploy_removes_autoscaling_leaves_no_half_state(
        prod, quotas, aws, monkeypatch, capsys, operation):  # noqa: F811
    """The server removed it, the answer never came, botocore asked again and heard "none found": gone is gone, and
    the undeploy goes on to delete the endpoint."""
    from faultproxy import FaultProxy

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3")
    deploy(config, executor(config), JOBS[0])
    with FaultProxy(aws, once={operation: "closed"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        undeploy(config, executor(config))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    assert proxy.once == {}  # the answer was lost
    assert scaling() == ([], []) and client("sagemaker").list_endpoints()["Endpoints"] == []
    assert "endpoint sagemake-example: autoscaling removed" in capsys.readouterr().err


def test_a_change_of_instance_type_takes_the_registration_off_first(prod, quotas, monkeypatch):  # noqa: F811
    """SageMaker refuses UpdateEndpoint to another instance type while the variant is registered (played below):
    the deploy removes the registration first and registers it again once the endpoint serves."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3")
    deploy(config, executor(config), JOBS[0])
    played = SageMakerResponse.update_endpoint
    refused = []

    def update_endpoint(self):
        params = json.loads(self.body)
        backend = self.sagemaker_backend
        old = backend.endpoint_configs[backend.endpoints[params["EndpointName"]].endpoint_config_name]
        new = backend.endpoint_configs[params["EndpointConfigName"]]
        registered = applicationautoscaling_backends[self.current_account][self.region].targets.get(DIMENSION, {})
        if RESOURCE in registered and old.production_variants[0]["InstanceType"] != \
                new.production_variants[0]["InstanceType"]:
            refused.append(params)
            raise ValidationError(message="The variant AllTraffic is registered for autoscaling: deregister it to "
                                  "change its instance type")
        return played(self)

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    config = settings(monkeypatch, ENDPOINT_INSTANCE_TYPE="ml.m5.large", ENDPOINT_MAX_INSTANCES="4")
    quotas["defaults"]["ml.m5.large for endpoint usage"] = 4.0
    deploy(config, executor(config), JOBS[1])
    assert refused == [] and span_and_target() == (2, 4, 70.0)
    sagemaker = client("sagemaker")
    serving = sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointConfigName"]
    configuration = sagemaker.describe_endpoint_config(EndpointConfigName=serving)
    assert configuration["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"


def test_a_most_above_the_accounts_quota_is_refused_before_anything_is_made(prod, quotas, monkeypatch):  # noqa: F811
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="5")  # AWS's default quota: 4
    with pytest.raises(UserError) as refused:
        deploy(config, executor(config), JOBS[0])
    assert str(refused.value) == (
        "ENDPOINT_MAX_INSTANCES=5 is above this account's quota of 4 ml.c5.xlarge for endpoints in eu-central-1: set "
        "it to 4 or less, or ask AWS for more (Service Quotas: 'ml.c5.xlarge for endpoint usage')")
    sagemaker = client("sagemaker")
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == [] and scaling() == ([], [])


def test_a_quota_that_cannot_be_read_is_said_and_the_deploy_goes_on(prod, monkeypatch, capsys):  # noqa: F811
    """moto's own Service Quotas (no SageMaker quotas, a 500 for ListServiceQuotas) stands for an account whose
    credentials may not read them: one line says the quota went unchecked."""
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3", AWS_MAX_ATTEMPTS="1")
    deploy(config, executor(config), JOBS[0])
    assert "endpoint sagemake-example: the quota of ml.c5.xlarge for endpoints was not checked (" in \
        capsys.readouterr().err
    assert span_and_target()[:2] == (2, 3)


@pytest.mark.parametrize(("values", "problem"), [
    ({"ENDPOINT_MAX_INSTANCES": "1"}, "ENDPOINT_MAX_INSTANCES=1 is below ENDPOINT_INSTANCE_COUNT=2: set it to 2 or "
     "more to scale, or to 0 for no autoscaling"),
    ({"ENDPOINT_MAX_INSTANCES": "four"}, "ENDPOINT_MAX_INSTANCES='four' must be a whole number from 0 to 100"),
    ({"ENDPOINT_TARGET_INVOCATIONS": "0"}, "ENDPOINT_TARGET_INVOCATIONS='0' must be a number above 0, e.g. 70"),
    ({"ENDPOINT_TARGET_INVOCATIONS": "-5"}, "ENDPOINT_TARGET_INVOCATIONS='-5' must be a number above 0, e.g. 70"),
    ({"ENDPOINT_TARGET_INVOCATIONS": "lots"}, "ENDPOINT_TARGET_INVOCATIONS='lots' must be a number above 0, e.g. 70"),
])
def test_bad_autoscaling_settings_are_refused_in_one_line_before_anything(prod, monkeypatch, values, problem):  # noqa: F811
    with pytest.raises(UserError) as refused:
        settings(monkeypatch, **values)
    assert str(refused.value) == f"1 config problem(s): {problem}"


def test_credentials_that_may_not_read_autoscaling_still_deploy_and_undeploy_without_it(prod, monkeypatch):  # noqa: F811
    """No application-autoscaling permission (played: moto checks none): a deploy and an undeploy that use no
    autoscaling go as before."""
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
    from moto.core.exceptions import JsonRESTError

    denied = []

    def describe_scalable_targets(self):
        denied.append(json.loads(self.body))
        raise JsonRESTError("AccessDeniedException", "not authorized to perform: application-autoscaling:"
                            "DescribeScalableTargets")

    monkeypatch.setattr(ApplicationAutoScalingResponse, "describe_scalable_targets", describe_scalable_targets)
    config, _, _ = prod
    deploy(config, executor(config), JOBS[0])
    undeploy(config, executor(config))
    assert len(denied) == 2 and client("sagemaker").list_endpoints()["Endpoints"] == []


@pytest.mark.parametrize(("values", "problem"), [
    ({"ENDPOINT_MAX_INSTANCES": "9"}, "ENDPOINT_MAX_INSTANCES=9 is above this account's quota of 4 ml.c5.xlarge for "
     "endpoints in eu-central-1: set it to 4 or less, or ask AWS for more (Service Quotas: 'ml.c5.xlarge for endpoint "
     "usage')"),
    ({"ENDPOINT_MAX_INSTANCES": "1"}, "1 config problem(s): ENDPOINT_MAX_INSTANCES=1 is below "
     "ENDPOINT_INSTANCE_COUNT=2: set it to 2 or more to scale, or to 0 for no autoscaling"),
], ids=["above_quota", "below_count"])
def test_make_deploy_ends_bad_autoscaling_in_one_line_with_exit_2(prod, quotas, monkeypatch, values, problem):  # noqa: F811
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    refused = subprocess.run([*sagemake(ROOT), "deploy", JOBS[0]], capture_output=True, text=True, timeout=300)
    assert refused.returncode == Exit.BAD_INPUT, refused.stderr
    assert refused.stderr.splitlines()[-1] == f"sagemake: {problem}"
    assert client("sagemaker").list_endpoint_configs()["EndpointConfigs"] == [] and scaling() == ([], [])


@pytest.mark.parametrize("operation", ["RegisterScalableTarget", "PutScalingPolicy"])
def test_a_lost_answer_while_deploy_registers_autoscaling_is_asked_again_to_the_same_end(
        prod, quotas, aws, monkeypatch, operation):  # noqa: F811
    """Both calls create or update: the retry after a lost answer leaves one target and one policy, as asked."""
    from faultproxy import FaultProxy

    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3", ENDPOINT_TARGET_INVOCATIONS="25")
    with FaultProxy(aws, once={operation: "closed"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        deploy(config, executor(config), JOBS[0])
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    assert proxy.once == {}  # the answer was lost
    assert span_and_target() == (2, 3, 25.0)


def test_a_redeploy_keeps_the_scaled_count_and_a_registration_set_up_elsewhere(  # noqa: F811
        prod, quotas, monkeypatch, capsys):  # noqa: F811
    """A redeploy of a registered variant asks UpdateEndpoint to keep its instance count (RetainAllVariantProperties):
    scaled out under load, it would fall back to the initial count with the new model. A registration that is not
    sagemake's (no sagemake policy: the console's, Terraform's) is kept by a deploy without autoscaling."""
    from moto.sagemaker.responses import SageMakerResponse

    played, asked = SageMakerResponse.update_endpoint, []

    def update_endpoint(self):
        asked.append(json.loads(self.body))
        return played(self)

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES="3")
    deploy(config, executor(config), JOBS[0])
    deploy(config, executor(config), JOBS[1])
    assert [params.get("RetainAllVariantProperties") for params in asked] == [True]

    autoscaling = client("application-autoscaling")
    autoscaling.delete_scaling_policy(PolicyName="sagemake-invocations-per-instance", ServiceNamespace="sagemaker",
                                      ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    autoscaling.put_scaling_policy(  # the team's own, on the same registration
        PolicyName="theirs", PolicyType="TargetTrackingScaling", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
        ScalableDimension=DIMENSION, TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 10.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    capsys.readouterr()
    config = settings(monkeypatch, ENDPOINT_MAX_INSTANCES=None)
    deploy(config, executor(config), JOBS[0])
    targets, policies = scaling()
    assert len(targets) == 1 and [p["PolicyName"] for p in policies] == ["theirs"]
    assert ("endpoint sagemake-example: its autoscaling was set up outside sagemake (no policy "
            "sagemake-invocations-per-instance): kept") in capsys.readouterr().err
    assert asked[-1].get("RetainAllVariantProperties") is True  # registered: its count kept
