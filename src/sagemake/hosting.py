"""What batch transform and endpoints share on SageMaker: the SageMaker model of a training job, made once and
tagged as sagemake's, and the rule that sagemake touches only what it made.

A model is named after its training job (both are at most 63 characters), so a second transform or deploy of the
same job reuses it; one of that name that sagemake did not make (no sagemake:project tag of this project) is
refused, never reused or deleted.
"""

from __future__ import annotations

from sagemake.aws.api import ERRORS, call, error_code, failure
from sagemake.cli import UserError, say
from sagemake.fetch_model import completed
from sagemake.jobs.training import TAG_PREFIX

PROJECT_TAG = f"{TAG_PREFIX}project"
JOB_TAG = f"{TAG_PREFIX}job"


def hosting_tags(config, job: str) -> list[dict]:
    """The tags of everything sagemake makes for hosting: project, training job, ENV."""
    return [{"Key": PROJECT_TAG, "Value": config["PROJECT_NAME"]}, {"Key": JOB_TAG, "Value": job},
            {"Key": f"{TAG_PREFIX}env", "Value": config.env}]


def ours(sagemaker, arn: str, project: str) -> bool:
    """Whether the resource at arn carries this project's sagemake tag."""
    found = call(sagemaker.list_tags, ResourceArn=arn).get("Tags", [])
    return any(t["Key"] == PROJECT_TAG and t["Value"] == project for t in found)


def missing(err: Exception) -> bool:
    """SageMaker's way to say a model, config or endpoint does not exist: a ValidationException 'Could not find'."""
    return error_code(err) == "ValidationException" and "could not find" in str(err).lower()


def completed_job(executor, job: str) -> dict:
    """The training job's record; only a Completed job has a model to transform or deploy."""
    return completed(executor, job, "serve")


def ensure_model(executor, record: dict) -> dict:
    """CreateModel for the training job (its image, its model.tar.gz, SAGEMAKER_ROLE_ARN), tagged; a model of
    that name made by sagemake for this project is reused. Returns DescribeModel's answer."""
    config, sagemaker = executor.config, executor.sagemaker
    name = record["TrainingJobName"]
    try:
        found = sagemaker.describe_model(ModelName=name)
    except ERRORS as err:
        if not missing(err):
            raise failure(err) from None
        found = None
    if found is not None:
        if not ours(sagemaker, found["ModelArn"], config["PROJECT_NAME"]):
            raise UserError(f"a SageMaker model named {name} exists and is not sagemake's (no {PROJECT_TAG}="
                            f"{config['PROJECT_NAME']} tag): delete or rename it; sagemake leaves it alone")
        say(f"model {name}: made by sagemake already, reused")
        return found
    container = {"Image": record["AlgorithmSpecification"]["TrainingImage"],
                 "ModelDataUrl": record["ModelArtifacts"]["S3ModelArtifacts"]}
    call(sagemaker.create_model, ModelName=name, ExecutionRoleArn=config["SAGEMAKER_ROLE_ARN"],
         PrimaryContainer=container, Tags=hosting_tags(config, name))
    say(f"model {name}: created from {container['ModelDataUrl']} with image {container['Image']}")
    return call(sagemaker.describe_model, ModelName=name)
