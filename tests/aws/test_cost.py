"""Cost and warm pools: prices from the Price List API (a stand-in on 127.0.0.1 answering GetProducts as AWS does),
its cache and the shipped table; what `make plan` says a job may cost; the ledger of `make jobs`; warm pools read
back from the emulator and said while following."""

import json
import os
import subprocess
from datetime import date, timedelta

import boto3
import pytest
from conftest import ROOT, in_process, sagemake
from emulator import REGION, SageMakerDriver, backend, client, make_bucket, register_image, settings

from sagemake.aws.sync import sync
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.sagemaker.executor import SageMakerExecutor
from sagemake.jobs.training import plan
from sagemake.pricing import TABLE, TRAINING, Prices, cache_path, ledger_entry, plan_line
from sagemake.targets.jobs import list_jobs

TARGET = "AWSPriceListService.GetProducts"


def session(region=REGION):
    return boto3.Session(region_name=region)


def asked(usage_type, location="EU (Frankfurt)"):
    """The GetProducts request sagemake sends for one instance type."""
    return (TARGET, {"ServiceCode": "AmazonSageMaker", "FormatVersion": "aws_v1", "MaxResults": 10, "Filters": [
        {"Type": "TERM_MATCH", "Field": "location", "Value": location},
        {"Type": "TERM_MATCH", "Field": "usagetype", "Value": usage_type}]})


def test_a_price_comes_from_the_price_list_api_then_from_its_dated_cache(aws, price_list):
    price = Prices(REGION, session()).hourly("ml.m5.xlarge", TRAINING)
    assert (price.hourly, price.source) == (0.274, f"AWS Price List API, {date.today().isoformat()}")
    assert price_list.requests == [asked("EUC1-Train:ml.m5.xlarge")]  # exactly this, once
    assert json.loads(cache_path().read_text()) == {
        f"{REGION} ml.m5.xlarge": {"hourly": 0.274, "date": date.today().isoformat()}}

    again = Prices(REGION, session())  # another command, later: the cache answers
    assert again.hourly("ml.m5.xlarge", TRAINING).hourly == 0.274
    assert again.sources() == (f"prices for {REGION}: AWS Price List API as of {date.today().isoformat()} "
                               f"(cached in {cache_path()})")
    assert len(price_list.requests) == 1

    week_later = Prices(REGION, session(), today=date.today() + timedelta(days=8))  # too old: asked again
    assert week_later.hourly("ml.m5.xlarge", TRAINING).hourly == 0.274
    assert len(price_list.requests) == 2


def test_without_the_api_the_shipped_table_answers_and_an_unknown_price_is_never_zero(aws, price_list):
    price_list.refusal = (400, "AccessDeniedException", "User is not authorized to perform pricing:GetProducts")
    east = Prices("us-east-1", session("us-east-1"))
    price = east.hourly("ml.g5.2xlarge", TRAINING)
    assert (price.hourly, price.source) == (1.515, f"the shipped table of {TABLE.date}")
    assert price_list.requests == [asked("USE1-Train:ml.g5.2xlarge", "US East (N. Virginia)")]
    assert east.sources() == (f"prices for us-east-1: the shipped table of {TABLE.date} (Price List API: AWS denied "
                              "GetProducts (User is not authorized to perform pricing:GetProducts): grant it to your "
                              "credentials)")
    east.hourly("ml.c5.xlarge", TRAINING)
    assert len(price_list.requests) == 1  # refused once: not asked again by the same command
    assert not cache_path().exists()  # a refusal is not a price

    frankfurt = Prices(REGION, session())
    unknown = frankfurt.hourly("ml.p3.2xlarge", TRAINING)  # the API is refused, and the table has no Frankfurt
    assert unknown.hourly is None
    assert unknown.source == (f"unknown: the shipped table of {TABLE.date} has no training price for ml.p3.2xlarge "
                              "in eu-central-1")
    request = {"ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 2},
               "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
    assert plan_line(request, frankfurt) == (
        f"cost on SageMaker: ml.p3.2xlarge x 2: unknown (prices for eu-central-1: {unknown.source} (Price List API: "
        "AWS denied GetProducts (User is not authorized to perform pricing:GetProducts): grant it to your "
        "credentials))")
    assert "$0" not in plan_line(request, frankfurt)

    price_list.refusal = None
    listed_none = Prices(REGION, session()).hourly("ml.trn1.2xlarge", TRAINING)  # the API answers, with no such product
    assert listed_none.hourly is None and listed_none.source.startswith("unknown: the Price List API has none, and")


def test_plan_says_the_hourly_rate_and_the_worst_case(aws, price_list):
    prices = Prices("us-east-1")  # no session: the table
    on_demand = {"ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3},
                 "StoppingCondition": {"MaxRuntimeInSeconds": 7200}}
    assert plan_line(on_demand, prices) == (
        "cost on SageMaker: ml.m5.xlarge $0.23/h x 3 instances = $0.69/h; at most $1.38 for MaxRuntimeInSeconds=7200 s "
        f"(prices for us-east-1: the shipped table of {TABLE.date})")
    spot = {"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}, "EnableManagedSpotTraining": True,
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 36000}}
    assert plan_line(spot, prices).startswith(
        "cost on SageMaker: ml.m5.large $0.115/h x 1 instance = $0.115/h; at most $1.15 for "
        "MaxWaitTimeInSeconds=36000 s; spot bills only the seconds it trains")
    warm = {"ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "KeepAlivePeriodInSeconds": 1800},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
    assert "; at most $3.03 for MaxRuntimeInSeconds=3600 s; a warm pool kept 1800 s adds up to $1.51 (" in \
        plan_line(warm, prices)
    assert price_list.requests == []


def test_make_plan_env_prod_prints_the_cost_on_stderr(aws, price_list, example_data):
    env = {"ENV": "prod", "DATA_DIR": str(example_data), "INSTANCE_COUNT": "2", "KEEP_ALIVE_SECONDS": "600",
           **settings()}
    result = subprocess.run([*sagemake(ROOT), "plan"], cwd=ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
    assert result.stderr.splitlines()[-1] == (
        "==> cost on SageMaker: ml.m5.large $0.137/h x 2 instances = $0.274/h; at most $0.27 for "
        "MaxRuntimeInSeconds=3600 s; a warm pool kept 600 s adds up to $0.05 (prices for eu-central-1: AWS Price List "
        f"API, {date.today().isoformat()})")
    assert price_list.requests == [asked("EUC1-Train:ml.m5.large")]


def billed(name, billable, training, spot=False, pool=None, count=2, kind="ml.m5.xlarge"):
    """Play what SageMaker reports once a job ends (moto reports none of it)."""
    job = backend().training_jobs[name]
    job.billable_time_in_seconds, job.training_time_in_seconds = billable, training
    job.enable_managed_spot_training = spot
    job.resource_config = {**job.resource_config, "InstanceType": kind, "InstanceCount": count}
    if pool:
        job.warm_pool_status = pool


def test_the_ledger_shows_billable_seconds_cost_spot_savings_and_warm_pools(aws, price_list, tmp_path,
                                                                            example_data, capsys):
    config = resolve(root=ROOT, environ={"ENV": "prod", "DATA_DIR": str(example_data), **settings()})
    executor = SageMakerExecutor(config)
    names = []
    for _ in range(3):
        request = plan(config, executor)
        client("sagemaker").create_training_job(**request)
        names.append(request["TrainingJobName"])
    billed(names[0], 1800, 3600, pool={"Status": "Reused", "ResourceRetainedBillableTimeInSeconds": 120,
                                       "ReusedByJob": names[1]})
    billed(names[1], 900, 3600, spot=True)
    billed(names[2], 3600, 3600, kind="ml.p3.2xlarge")  # no price for it in Frankfurt
    capsys.readouterr()
    list_jobs(config, executor, 10)
    out, err = capsys.readouterr()
    rows = [line.split("  ") for line in out.splitlines()]
    table = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert table[0] == ["JOB", "STATUS", "DURATION", "BILLABLE", "COST", "SPOT SAVED", "validation:roc_auc",
                        "WARM POOL"]
    # $0.274/h x 2 instances: (1800 + 120 kept) s -> $0.29; 900 s -> $0.14, and 2700 s saved -> $0.41
    assert table[1:] == [
        [names[2], "Completed", "3600s", "3600s", "unknown", "-", "-", "-"],
        [names[1], "Completed", "3600s", "900s", "$0.14", "$0.41", "-", "-"],
        [names[0], "Completed", "3600s", "1800s", "$0.29", "-", "-", f"Reused 120s kept by {names[1]}"],
        ["TOTAL", "6300s", "$0.43 + 1 unknown", "$0.41"]]
    assert err.splitlines()[-1].startswith(f"==> jobs: prices for {REGION}: AWS Price List API, ")
    assert "unknown: the Price List API has none" in err.splitlines()[-1]


def test_following_a_job_says_it_reused_a_warm_pool(aws, tmp_path, example_data, trained_model, monkeypatch, capsys):
    from moto.sagemaker.responses import SageMakerResponse

    listed = SageMakerResponse.list_training_jobs

    def with_warm_pools(response):  # moto ignores WarmPoolStatusEquals and lists no WarmPoolStatus: as AWS does
        wanted = response._get_param("WarmPoolStatusEquals")
        answer = listed(response)
        jobs = response.sagemaker_backend.training_jobs
        summaries = []
        for summary in answer.result["TrainingJobSummaries"]:
            pool = getattr(jobs[summary["TrainingJobName"]], "warm_pool_status", None)
            if wanted is None or (pool or {}).get("Status") == wanted:
                summaries.append({**summary, **({"WarmPoolStatus": pool} if pool else {})})
        answer.result["TrainingJobSummaries"] = summaries
        return answer

    monkeypatch.setattr(SageMakerResponse, "list_training_jobs", with_warm_pools)
    config = resolve(root=ROOT, environ={"ENV": "prod", "DATA_DIR": str(example_data), "KEEP_ALIVE_SECONDS": "900",
                                         "MODELS_DIR": str(tmp_path), **settings()})
    executor = SageMakerExecutor(config)
    make_bucket()
    sync(config)
    register_image(executor.image())
    first = plan(config, executor)
    client("sagemaker").create_training_job(**first)
    backend().training_jobs[first["TrainingJobName"]].warm_pool_status = {
        "Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
    second = plan(config, executor)

    def take_the_pool():  # SageMaker moves the pool to the matching job as it starts
        backend().training_jobs[first["TrainingJobName"]].warm_pool_status = {
            "Status": "Reused", "ResourceRetainedBillableTimeInSeconds": 41, "ReusedByJob": second["TrainingJobName"]}

    with SageMakerDriver(model=trained_model) as driver:
        driver_transition = driver._transition

        def transition(job, status, message):
            if status == "Downloading":
                take_the_pool()
            if status == "Completed":
                job.warm_pool_status = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
            driver_transition(job, status, message)

        driver._transition = transition
        record = executor.run(second)
    assert record["TrainingJobStatus"] == "Completed"
    err = capsys.readouterr().err.splitlines()
    reused = [line for line in err if "warm pool" in line]
    assert reused == [
        f"==> job {second['TrainingJobName']}: started on the warm pool of job {first['TrainingJobName']} (reused: no "
        "new instances to wait for)",
        f"==> job {second['TrainingJobName']}: its instances stay warm for 900 s (warm pool Available, billed while "
        "kept): the next job with the same instance type and count, volume, role and VPC starts on them"]


def test_local_jobs_show_what_they_would_have_cost_and_keep_nothing_warm(tmp_path, example_data, capsys):
    config = resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"),
                                         "HP": "n_estimators=5", "KEEP_ALIVE_SECONDS": "300",
                                         "INSTANCE_TYPE": "ml.c5.xlarge", "INSTANCE_COUNT": "1",
                                         "XDG_CACHE_HOME": str(tmp_path)})
    executor = LocalExecutor(config)
    request = plan(config, executor)
    record = executor.run(request, in_process())
    assert record["TrainingJobStatus"] == "Completed"
    err = capsys.readouterr().err
    assert err.count("KEEP_ALIVE_SECONDS=300") == 1
    assert (f"job {request['TrainingJobName']}: KEEP_ALIVE_SECONDS=300 keeps SageMaker's instances warm after a "
            "job; a local job has none to keep, so it is ignored here") in err
    entry = ledger_entry(record, executor.prices())
    assert entry.billable == record["TrainingTimeInSeconds"] and entry.saved is None
    assert entry.cost == pytest.approx(0.204 * record["TrainingTimeInSeconds"] / 3600)
    list_jobs(config, executor, 10)
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].split()[:2] == ["TOTAL", f"{record['TrainingTimeInSeconds']}s"]
    assert err.splitlines()[-1] == (
        "==> jobs: what they would have cost on SageMaker (their instance type and count, for their duration); "
        f"prices for us-east-1: the shipped table of {TABLE.date}")
    assert "cost on SageMaker (this job runs locally, for nothing): ml.c5.xlarge $0.204/h x 1 instance" in \
        plan_line(request, executor.prices())
