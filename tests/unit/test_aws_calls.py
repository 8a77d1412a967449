"""The two places that catch what boto3 raises: call(fn, on={code: answer}) and create()'s rule for a lost answer.

The AWS side is botocore's own ClientError, as a refusal arrives (its code, and how many times botocore retried
the call); each test asserts the exact calls made. The rule end to end, through a proxy that loses answers after
the emulator acted, is tests/aws/test_faults.py's.
"""

import pytest
from botocore.exceptions import ClientError

from sagemake.aws.api import call, create
from sagemake.cli import AwsError, UserError


def refusal(code: str, retries: int = 0, operation: str = "CreateEndpoint") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} said"},
                        "ResponseMetadata": {"RetryAttempts": retries}}, operation)


class Api:
    """An AWS operation that answers each call from a list: a value, or an exception raised."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, **request):
        self.calls.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_call_answers_a_listed_refusal_and_turns_any_other_into_one_line():
    gone = UserError("nothing at s3://b/k: the job wrote none")
    on = {"NoSuchKey": None, "404": None, "AccessDenied": gone}
    api = Api({"ContentLength": 3}, refusal("NoSuchKey"), refusal("404"), refusal("AccessDenied"),
              refusal("Throttling"))
    assert call(api, on=on, Bucket="b", Key="k") == {"ContentLength": 3}
    assert call(api, on=on, Bucket="b", Key="k") is None
    assert call(api, on=on, Bucket="b", Key="k") is None
    with pytest.raises(UserError) as raised:
        call(api, on=on, Bucket="b", Key="k")
    assert raised.value is gone
    with pytest.raises(AwsError, match="CreateEndpoint failed"):
        call(api, on=on, Bucket="b", Key="k")
    assert api.calls == [{"Bucket": "b", "Key": "k"}] * 5


def test_a_create_whose_answer_was_lost_is_taken_when_what_is_there_is_the_one_asked(capsys):
    api, asked = Api(refusal("ResourceInUse", retries=1)), []
    create(api, lambda: asked.append("described") or True, "endpoint e", EndpointName="e", EndpointConfigName="c")
    assert api.calls == [{"EndpointName": "e", "EndpointConfigName": "c"}] and asked == ["described"]
    assert "endpoint e: an attempt whose answer was lost created it" in capsys.readouterr().err


@pytest.mark.parametrize("code", ["ResourceInUse", "ResourceInUseException", "ValidationException"])
def test_every_way_an_api_says_the_name_is_taken_is_one_rule(code):
    create(Api(refusal(code, retries=2)), lambda: True, "model m", ModelName="m")


def test_a_name_taken_by_something_else_or_on_the_first_attempt_stays_an_error():
    asked = []

    def ours():
        asked.append("described")
        return False

    with pytest.raises(AwsError, match="ResourceInUse"):  # a retry met another job of that name
        create(Api(refusal("ResourceInUse", retries=1)), ours, "job j", TrainingJobName="j")
    assert asked == ["described"]
    with pytest.raises(AwsError, match="ResourceInUse"):  # the first attempt's own answer: taken before we came
        create(Api(refusal("ResourceInUse", retries=0)), ours, "job j", TrainingJobName="j")
    with pytest.raises(AwsError, match="AccessDenied"):  # not a taken name at all
        create(Api(refusal("AccessDenied", retries=1)), ours, "job j", TrainingJobName="j")
    assert asked == ["described"]  # only the retried, taken name was looked at


def test_a_create_that_failed_on_the_network_or_on_aws_side_is_taken_when_what_is_there_is_the_one_asked(capsys):
    """Every attempt unanswered (the first lost after the server acted, the others failing): the resource asked
    for is there, and the command goes on with it; not there, or not known, the call's own failure stands."""
    from sagemake.aws.api import AwsUnavailable

    unreachable = AwsUnavailable("cannot reach AWS (sagemaker CreateProcessingJob, 3 attempts): ...")
    internal = ClientError({"Error": {"Code": "InternalFailure", "Message": "try again"},
                            "ResponseMetadata": {"RetryAttempts": 2, "HTTPStatusCode": 500}}, "CreateProcessingJob")
    for failed in (internal, unreachable):
        create(Api(failed), lambda: True, "processing p", ProcessingJobName="p")
        assert "processing p: an attempt whose answer was lost created it" in capsys.readouterr().err

    def unknown():
        raise UserError("no SageMaker job named 'p'")

    for ours in (lambda: False, unknown):
        with pytest.raises(AwsUnavailable) as failed:
            create(Api(unreachable), ours, "processing p", ProcessingJobName="p")
        assert failed.value is unreachable
    with pytest.raises(AwsError, match="AccessDenied"):  # AWS answered: asking again changes nothing
        create(Api(refusal("AccessDenied", retries=2)), lambda: True, "processing p", ProcessingJobName="p")


def test_the_request_digest_is_the_same_job_whatever_its_name_and_another_with_other_data_or_settings():
    from sagemake.jobs import request_digest

    def request(name, data="digest=abc", instance="ml.m5.large"):
        return {"TrainingJobName": name, "ResourceConfig": {"InstanceType": instance},
                "CheckpointConfig": {"S3Uri": f"s3://b/checkpoints/{name}"},
                "Tags": [{"Key": "sagemake:git-sha", "Value": name[-7:]},
                         {"Key": "sagemake:data:train", "Value": data}]}

    first = request_digest(request("p-261207-101500-000aaaaa"), "p-261207-101500-000aaaaa")
    assert request_digest(request("p-261207-101501-000bbbbb"), "p-261207-101501-000bbbbb") == first
    assert request_digest(request("p-1", data="digest=abd"), "p-1") != first
    assert request_digest(request("p-1", instance="ml.m5.xlarge"), "p-1") != first
    seeded = request("p-1")  # started from another job's checkpoints (CHECKPOINT_FROM): another job
    seeded["Tags"].append({"Key": "sagemake:checkpoint-from", "Value": "p-261207-101400-000ccccc"})
    assert request_digest(seeded, "p-1") != first
