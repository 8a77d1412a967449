"""Autoscaling of an endpoint on SageMaker: its variant as a scalable target of Application Auto Scaling.

With ENDPOINT_MAX_INSTANCES above ENDPOINT_INSTANCE_COUNT, a deploy registers the variant (from the initial count
up to the most) once the endpoint serves, with a target-tracking policy on SageMakerVariantInvocationsPerInstance
at ENDPOINT_TARGET_INVOCATIONS; without, a registration an earlier deploy left is removed (one set up outside
sagemake, without its policy, is kept). An update keeps a registered variant's instance count. Undeploy removes it with
the endpoint. Every step may be repeated: RegisterScalableTarget and PutScalingPolicy create or update, and a
removal that finds nothing (a retry whose first answer was lost, an endpoint already gone) has nothing left to do.
"""

from __future__ import annotations

from sagemake.aws.api import call
from sagemake.cli import AwsError, UserError, say
from sagemake.config import Config
from sagemake.jobs.endpoint import VARIANT, endpoint_name
from sagemake.pricing import HOSTING, Prices, rate

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY = "sagemake-invocations-per-instance"
POLICY_TYPE = "TargetTrackingScaling"
QUOTA_SERVICE = "sagemaker"  # Service Quotas' code for SageMaker
GONE = dict.fromkeys(("ObjectNotFoundException", "ValidationException"))  # "none found", as AWS and moto say it


def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def span(config: Config) -> tuple[int, int] | None:
    """(fewest, most) instances when the endpoint scales; None when it does not."""
    fewest, most = config.int("ENDPOINT_INSTANCE_COUNT"), config.int("ENDPOINT_MAX_INSTANCES")
    return (fewest, most) if most > fewest else None


def quota_name(instance_type: str) -> str:
    return f"{instance_type} for endpoint usage"


def endpoint_quota(executor, instance_type: str) -> float | None:
    """The account's quota of instance_type for endpoints in the region (the value applied to the account, else
    AWS's default); None when Service Quotas lists none of that name."""
    quotas = executor.service_quotas
    for operation in ("list_service_quotas", "list_aws_default_service_quotas"):
        pages = call(lambda op=operation: list(quotas.get_paginator(op).paginate(ServiceCode=QUOTA_SERVICE)))
        for page in pages:
            for quota in page.get("Quotas", []):
                if quota.get("QuotaName") == quota_name(instance_type):
                    return quota["Value"]
    return None


def check(config: Config, executor, instance_type: str, prices: Prices) -> None:
    """Before anything is made: refuse a most above the account's quota, and say the price per hour at the most."""
    scaled = span(config)
    if scaled is None:
        return
    fewest, most = scaled
    name = endpoint_name(config)
    try:
        quota = endpoint_quota(executor, instance_type)
    except AwsError as err:  # no permission for Service Quotas, say: SageMaker still refuses to scale past it
        say(f"endpoint {name}: the quota of {instance_type} for endpoints was not checked ({err})")
    else:
        if quota is not None and most > quota:
            raise UserError(f"ENDPOINT_MAX_INSTANCES={most} is above this account's quota of {quota:g} {instance_type} "
                            f"for endpoints in {executor.region}: set it to {quota:g} or less, or ask AWS for more "
                            f"(Service Quotas: '{quota_name(instance_type)}')")
    hourly = prices.hourly(instance_type, HOSTING).hourly
    worst = "unknown" if hourly is None else rate(hourly * most)
    say(f"endpoint {name}: autoscaling from {fewest} to {most} x {instance_type} at "
        f"{config.number('ENDPOINT_TARGET_INVOCATIONS'):g} invocations per instance a minute; price per hour at "
        f"{most}: {worst}")


def registered(executor, endpoint: str) -> dict | None:
    """The endpoint's variant as a scalable target (DescribeScalableTargets), or None. Credentials that may not
    read Application Auto Scaling registered none through sagemake: a deploy or undeploy without autoscaling needs
    no permission for it."""
    found = call(executor.autoscaling.describe_scalable_targets, on={"AccessDeniedException": {}},
                 ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(endpoint)], ScalableDimension=DIMENSION)
    return (found.get("ScalableTargets") or [None])[0]


def apply(config: Config, executor, endpoint: str) -> None:
    """Once the endpoint serves: register (or update) its variant and policy as the settings say, or remove an
    earlier registration when they say no autoscaling."""
    scaled = span(config)
    if scaled is None:
        if registered(executor, endpoint) is None:
            return
        if not ours(executor, endpoint):
            say(f"endpoint {endpoint}: its autoscaling was set up outside sagemake (no policy {POLICY}): kept")
            return
        _deregister(executor, endpoint)
        say(f"endpoint {endpoint}: autoscaling removed (ENDPOINT_MAX_INSTANCES is not above ENDPOINT_INSTANCE_COUNT)")
        return
    fewest, most = scaled
    target = config.number("ENDPOINT_TARGET_INVOCATIONS")
    where = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint), "ScalableDimension": DIMENSION}
    call(executor.autoscaling.register_scalable_target, MinCapacity=fewest, MaxCapacity=most, **where)
    call(executor.autoscaling.put_scaling_policy, PolicyName=POLICY, PolicyType=POLICY_TYPE, **where,
         TargetTrackingScalingPolicyConfiguration={
             "TargetValue": target, "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC}})
    say(f"endpoint {endpoint}: scales from {fewest} to {most} instances to keep {target:g} invocations per "
        "instance a minute")


def ours(executor, endpoint: str) -> bool:
    """Whether the variant's registration is sagemake's: it carries sagemake's policy."""
    found = call(executor.autoscaling.describe_scaling_policies, ServiceNamespace=NAMESPACE,
                 ResourceId=resource_id(endpoint), ScalableDimension=DIMENSION, PolicyNames=[POLICY])
    return any(policy.get("PolicyName") == POLICY for policy in found.get("ScalingPolicies", []))


def remove(executor, endpoint: str) -> bool:
    """Delete sagemake's policy and deregister the variant (which takes any other policy with it); True when it
    was registered."""
    if registered(executor, endpoint) is None:
        return False
    _deregister(executor, endpoint)
    return True


def _deregister(executor, endpoint: str) -> None:
    where = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint), "ScalableDimension": DIMENSION}
    call(executor.autoscaling.delete_scaling_policy, on=GONE, PolicyName=POLICY, **where)
    call(executor.autoscaling.deregister_scalable_target, on=GONE, **where)


def before_update(executor, endpoint: dict, instance_type: str) -> bool:
    """Whether the update keeps the variant's instance count (RetainAllVariantProperties): while it is registered
    for autoscaling, so that an endpoint scaled out does not fall back to its initial count with the new model.
    SageMaker refuses an update that changes the instance type of a registered variant: then the registration is
    removed first (the deploy registers it again once the endpoint serves)."""
    name = endpoint["EndpointName"]
    if registered(executor, name) is None:
        return False
    served = call(executor.sagemaker.describe_endpoint_config, EndpointConfigName=endpoint["EndpointConfigName"])
    types = {v.get("InstanceType") for v in served["ProductionVariants"]}
    if types and types != {instance_type}:
        remove(executor, name)
        say(f"endpoint {name}: autoscaling removed for the change to {instance_type}; registered again once the "
            "endpoint serves (a deploy that fails before leaves it off: deploy again)")
        return False
    return True
