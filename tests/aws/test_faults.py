"""The production path through a faulty network: tests/faultproxy.py between boto3 and moto's server.

With a share of the requests failing (resets, lost answers, 500s, 503s, answers
too slow), the path still ends whole, by botocore's retries alone; with every
request failing, or no network at all, each command ends with one line and exit
status 3; and a command cut off midway carries on where it stopped when run again.
"""

import collections
import contextlib
import hashlib
import io
import json
import os
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.config import Config as ClientConfig
from conftest import ROOT, copy_repo, sagemake
from emulator import (
    ACCOUNT,
    REGION,
    ROLE,
    ProcessingDriver,
    SageMakerDriver,
    TuningDriver,
    client,
    make_bucket,
    register_image,
    settings,
)
from faultproxy import KINDS, FaultProxy
from test_processing import check_channels

from sagemake import sourcedir
from sagemake.aws import api as cloud
from sagemake.cli import Exit
from sagemake.config import resolve
from sagemake.deployments import history
from sagemake.executors.sagemaker.executor import SageMakerExecutor
from sagemake.targets.jobs import list_jobs
from sagemake.targets.train import train

FILES = 200  # small files in the train channel
READ_TIMEOUT = 1  # seconds: the test's clients give up on a `slow` answer (held 2 s) after this long
SLOW = 2.0
NETWORK_DOWN = ("reset", "500", "closed", "503")  # what a subprocess meets (its read timeout is botocore's 60 s)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A user's checkout of this repository: the commands run from its files (no one edits them meanwhile)."""
    return copy_repo(tmp_path_factory.mktemp("checkout"))


@pytest.fixture
def data(tmp_path):
    """DATA_DIR: a train channel of many small files, a validation channel of a few."""
    folder = tmp_path / "data"
    for channel, count in (("train", FILES), ("validation", 3)):
        (folder / channel).mkdir(parents=True)
        for i in range(count):
            (folder / channel / f"part-{i:03d}.csv").write_text(f"{channel},{i}\n" * (1 + i % 9))
    return folder


def prod_config(root, data, folder, **extra):
    return resolve(root=root, environ={"ENV": "prod", "DATA_DIR": str(data), "MODELS_DIR": str(folder / "models"),
                                       "JOBS_DIR": str(folder / "jobs"), **settings(**extra)})


def s3_objects(prefix: str) -> dict[str, bytes]:
    """Every object under s3://train-bucket/<prefix>, read from the emulator directly (not through the proxy)."""
    s3 = client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="train-bucket", Prefix=prefix)
            for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket="train-bucket", Key=key)["Body"].read() for key in keys}


def assert_mirrored(data) -> None:
    """S3 holds each channel exactly: every file, byte for byte, and nothing else."""
    for channel in ("train", "validation"):
        prefix = f"sagemake-example/data/{channel}/"
        local = {prefix + p.name: p.read_bytes() for p in (data / channel).iterdir()}
        assert s3_objects(prefix) == local, channel


def test_the_prod_path_ends_whole_when_15_percent_of_requests_fail(aws, checkout, data, tmp_path, trained_model,
                                                                    monkeypatch, capsys):
    config = prod_config(checkout, data, tmp_path)
    make_bucket()
    register_image(SageMakerExecutor(config).image())  # pushed earlier: no engine needed
    # CreateTrainingJob's first answer is lost once the job exists: the retry must not make it a failure.
    with FaultProxy(aws, rate=0.15, seed=20261202, slow_seconds=SLOW, once={"CreateTrainingJob": "closed"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for name in cloud.RETRIES:  # sagemake's own retry settings: standard mode, 8 attempts
            monkeypatch.delenv(name, raising=False)
        aws_session = cloud.session(config)
        # botocore's read timeout is 60 s; a slow answer here is over in seconds.
        aws_session._session.set_default_client_config(ClientConfig(read_timeout=READ_TIMEOUT))
        executor = SageMakerExecutor(config, aws_session)
        with SageMakerDriver(model=trained_model, step_seconds=0.5, endpoint=aws):  # SageMaker is past the network
            assert train(config, executor) == Exit.OK
        name = executor.latest()
        assert list_jobs(config, executor, 10) == Exit.OK
        executor.print_log(name)
    out, err = capsys.readouterr()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)

    assert proxy.broken_total > 0 and set(proxy.broken) == set(KINDS), proxy.broken  # every kind of fault happened
    assert proxy.forwarded > FILES
    assert f"upload: train: {FILES} uploaded" in err and "upload: validation: 3 uploaded" in err
    assert f"job {name}: an attempt whose answer was lost created it" in err
    assert "Completed / Completed" in err and "Traceback" not in err
    assert out.count("[algo-1-1700000000] epoch 2") == 2  # followed to the end, then printed again by `logs`
    assert [line.split()[:2] for line in out.splitlines() if line.startswith(name)] == [[name, "Completed"]]
    assert len(client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 1  # one job, not two
    assert_mirrored(data)

    model = tmp_path / "models" / name
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["status"] == "Completed"
    assert manifest["artifact"]["sha256"] == hashlib.sha256(trained_model).hexdigest()
    assert manifest["artifact"]["bytes"] == len(trained_model)
    assert manifest["data"]["train"]["files"] == FILES
    with tarfile.open(fileobj=io.BytesIO(trained_model)) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        assert members
        for member in members:
            assert (model / member.name).read_bytes() == archive.extractfile(member).read(), member.name


def command_env(data, folder, endpoint, **extra) -> dict:
    return {**os.environ, "ENV": "prod", "DATA_DIR": str(data), "MODELS_DIR": str(folder / "models"),
            "VENV": str(ROOT / ".venv"), **settings(), "AWS_ENDPOINT_URL": endpoint, **extra}


def commands(checkout) -> dict[str, list[str]]:
    """What the make targets run, each with its own exit status (make itself exits 2 for any of them)."""
    return {name: [*sagemake(checkout), name] for name in ("upload", "train", "jobs", "logs", "fetch", "doctor")}


@pytest.mark.parametrize("network", ["failing", "gone"])
def test_every_command_is_one_line_and_status_3_when_aws_cannot_be_reached(aws, checkout, data, tmp_path, network):
    make_bucket()
    attempts = 2  # AWS_MAX_ATTEMPTS is honoured: each command tries its first call this many times, then stops
    proxies = {name: FaultProxy(aws, rate=1.0, kinds=NETWORK_DOWN).start() for name in commands(checkout)}
    if network == "gone":
        for proxy in proxies.values():
            proxy.stop()
    try:
        running = {name: subprocess.Popen(command, cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=command_env(data, tmp_path, proxies[name].url,
                                                                     AWS_MAX_ATTEMPTS=str(attempts)))
                   for name, command in commands(checkout).items()}
        ended = {name: (process.wait(timeout=120), process.stderr.read()) for name, process in running.items()}
    finally:
        for proxy in proxies.values():
            proxy.stop()
    for name, (status, said) in ended.items():
        assert status == Exit.AWS_ERROR, (name, said)
        # One line names the problem; before it, only the progress of what was done (train's data step).
        *progress, err = said.splitlines()
        assert "Traceback" not in said and len(progress) == (name == "train"), (name, said)
        assert all(line.startswith("==> data: ") for line in progress), (name, said)
        if network == "gone":
            assert err.startswith("sagemake: cannot reach AWS (") and f", {attempts} attempts): Could not connect to " \
                "the endpoint URL: " in err and err.endswith("then run the same command again"), (name, err)
        else:  # a reset, then a 500: the last answer is AWS's error
            # make upload asks first without boto3 (unchanged.py), the bucket's region and the manifest, once each:
            # boto3 then meets the next two faults, a lost answer and a 503.
            first = 2 if name == "upload" else 0
            last = "ServiceUnavailable" if first else "Internal"
            assert err.startswith("sagemake: AWS ") and f" failed {attempts} times ({last}" in err, (name, err)
            assert err.endswith("AWS is failing or throttling: run the same command again later"), err
            assert proxies[name].broken_total == attempts + first and proxies[name].forwarded == 0, \
                (name, proxies[name].broken)
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert "Contents" not in client("s3").list_objects_v2(Bucket="train-bucket")


def test_an_upload_cut_off_midway_says_so_in_one_line_and_resumes(aws, checkout, data, tmp_path):
    make_bucket()
    upload = commands(checkout)["upload"]
    attempts = 2
    # The two reads of the check without boto3, then boto3's region, manifest, lock and listing, then about 60
    # requests through; then the network is down.
    with FaultProxy(aws, kinds=NETWORK_DOWN, fail_after=64) as proxy:
        env = command_env(data, tmp_path, proxy.url, AWS_MAX_ATTEMPTS=str(attempts))
        cut = subprocess.run(upload, cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
        assert cut.returncode == Exit.AWS_ERROR, cut.stderr
        assert "Traceback" not in cut.stderr and len(cut.stderr.splitlines()) == 1, cut.stderr
        assert cut.stderr.startswith("sagemake: ") and "run the same command again" in cut.stderr
        arrived = len(s3_objects("sagemake-example/data/train/"))
        assert 60 <= arrived < FILES  # `closed` faults forward the request: the object arrives, the answer does not
        # Only the uploads under way when it failed went on failing (AWS_MAX_ATTEMPTS times each): the files not
        # started were left for the re-run, not each tried in turn against a dead network.
        assert 0 < proxy.broken_total < FILES - arrived, proxy.broken

        proxy.heal()
        again = subprocess.run(upload, cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"upload: train: {FILES - arrived} uploaded" in again.stderr
    assert f", {arrived} unchanged, 0 deleted" in again.stderr
    assert_mirrored(data)


@pytest.fixture
def unreachable(aws, checkout, data, tmp_path, monkeypatch):
    """A config and a session whose every request meets a dead network (one attempt each: no waiting)."""
    config = prod_config(checkout, data, tmp_path)
    make_bucket()
    with FaultProxy(aws, rate=1.0, kinds=NETWORK_DOWN) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        yield config, cloud.session(config), proxy


@pytest.mark.parametrize("step", ["download", "upload_code", "sync", "describe", "names", "print_log", "bucket",
                                  "any client"])
def test_every_aws_step_fails_as_one_aws_error(unreachable, checkout, tmp_path, step):
    config, aws_session, proxy = unreachable
    executor = SageMakerExecutor(config, aws_session)
    action = {
        "download": lambda: cloud.download(aws_session, "s3://train-bucket/x/model.tar.gz", tmp_path / "m.tar.gz"),
        "upload_code": lambda: cloud.upload_code(aws_session, checkout, "s3://train-bucket/code/sourcedir.tar.gz"),
        "sync": executor.sync_data,
        "describe": lambda: executor.describe("sagemake-example-abc1234-20261202-000000-000"),
        "names": executor.names,
        "print_log": lambda: executor.print_log("sagemake-example-abc1234-20261202-000000-000"),
        "bucket": lambda: cloud.check_bucket(config, aws_session),
        "any client": lambda: aws_session.client("ecr").describe_repositories(),  # no try around it: the session's
    }[step]
    with pytest.raises(cloud.AwsUnavailable) as failed:
        action()
    assert failed.value.status == Exit.AWS_ERROR and "\n" not in str(failed.value)
    assert proxy.broken_total == 1


def test_a_transfer_that_fails_is_one_line_too(aws, checkout, data, tmp_path, monkeypatch):
    """boto3's upload_file wraps the ClientError of a failed PUT in its own S3UploadFailedError."""
    config = prod_config(checkout, data, tmp_path)
    make_bucket()
    key = f"sagemake-example/code/{sourcedir.tag(checkout)}/sourcedir.tar.gz"
    with FaultProxy(aws, once={f"PUT /train-bucket/{key}": "500"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        with pytest.raises(cloud.AwsUnavailable, match=r"^AWS PutObject failed 1 time \(InternalError: "):
            cloud.upload_code(cloud.session(config), checkout, f"s3://train-bucket/{key}")
    assert proxy.broken == {"500": 1}


def test_every_call_gets_its_attempts_however_many_failed_before(aws, checkout, data, tmp_path, monkeypatch):
    """botocore's standard mode shares a retry quota per client (500 tokens, 14 a retry): 60 failing calls drain
    it, and from then on a call is tried once. sagemake's retry settings give every call its AWS_MAX_ATTEMPTS."""
    config = prod_config(checkout, data, tmp_path)
    make_bucket()
    calls, attempts = 60, 2
    with FaultProxy(aws, rate=1.0, kinds=("500",)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for name in cloud.RETRIES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", str(attempts))
        s3 = cloud.session(config).client("s3")
        tried = []

        def put(key: str) -> None:
            with pytest.raises(cloud.AwsError) as failed:
                cloud.call(s3.put_object, Bucket="train-bucket", Key=key, Body=b"x")
            tried.append(str(failed.value))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, [f"k{i}" for i in range(calls)]))
    assert proxy.broken == {"500": calls * attempts}
    assert tried == [f"AWS PutObject failed {attempts} times (InternalError: We encountered an internal error. "
                     "Please try again.): AWS is failing or throttling: run the same command again later"] * calls


# --- each command of the prod path through a faulty network, with the answer to its create lost ---

BACKOFF_SCALE = 10  # the commands wait a tenth of botocore's backoff between attempts: the attempts are the same


@pytest.fixture(scope="module")
def quick_backoff(tmp_path_factory) -> str:
    """A folder for the commands' PYTHONPATH whose sitecustomize makes botocore wait a tenth of its backoff
    between two attempts (its retry decisions are untouched): at 50 % a command's waits take seconds, not minutes."""
    folder = tmp_path_factory.mktemp("quick-backoff")
    (folder / "sitecustomize.py").write_text(
        "import time, types\nimport botocore.endpoint\n"
        f"botocore.endpoint.time = types.SimpleNamespace(sleep=lambda s: time.sleep(s / {BACKOFF_SCALE}))\n")
    return str(folder)


def test_the_upload_ends_whole_when_half_the_requests_fail(aws, checkout, data, tmp_path, quick_backoff):
    """Retries hold: 200 files and their listings, each request failing half the time, every call with its
    attempts (16 here: at 8, one call in 256 fails all of them, and a 200-file sync then ends in one line)."""
    make_bucket()
    with FaultProxy(aws, rate=0.5, seed=17, slow_seconds=0.2) as proxy:
        env = command_env(data, tmp_path, proxy.url, AWS_MAX_ATTEMPTS="16", PYTHONPATH=quick_backoff)
        done = subprocess.run(commands(checkout)["upload"], cwd=checkout, env=env, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"upload: train: {FILES} uploaded" in done.stderr and "Traceback" not in done.stderr
    assert proxy.broken_total > FILES / 2 and set(proxy.broken) == set(KINDS), proxy.broken
    assert_mirrored(data)


JOB = "sagemake-example-abc1234-261202-101500-123k3x9q"  # a Completed job, made past the network, for fetch and deploy
TUNING = {"TUNE_RANGES": "learning_rate=0.02:0.5:log max_depth=1:4", "TUNE_MAX_JOBS": "2", "TUNE_PARALLEL": "2",
          "HP": "n_estimators=10"}
# The lost answer of each command's create(s): the server acted, the client heard nothing and retried.
LOST = {"train": ["CreateTrainingJob"], "deploy": ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"],
        "tune": ["CreateHyperParameterTuningJob"], "preprocess": ["CreateProcessingJob"]}


def completed_job(trained_model: bytes) -> None:
    """JOB, Completed on SageMaker with its model.tar.gz (moto completes a job at once when no driver holds it)."""
    sagemaker = client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=JOB, RoleArn=ROLE, HyperParameters={"target": "target"},
        AlgorithmSpecification={"TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/train-image:t1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://train-bucket/sagemake-example/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60}, Tags=[{"Key": "sagemake:project", "Value": "sagemake-example"}])
    client("s3").put_object(Bucket="train-bucket", Key=f"sagemake-example/output/{JOB}/output/model.tar.gz",
                            Body=trained_model)


def listed(kind: str) -> list[str]:
    """The names of every resource of a kind in the emulator, read past the network."""
    sagemaker = client("sagemaker")
    operation, field, name = {
        "training": ("list_training_jobs", "TrainingJobSummaries", "TrainingJobName"),
        "tuning": ("list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries",
                   "HyperParameterTuningJobName"),
        "processing": ("list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName"),
        "model": ("list_models", "Models", "ModelName"),
        "endpoint_config": ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
        "endpoint": ("list_endpoints", "Endpoints", "EndpointName")}[kind]
    return [item[name] for item in getattr(sagemaker, operation)(MaxResults=100)[field]]


def whole_models(models) -> list[str]:
    """What is wrong in MODELS_DIR: a scratch folder left, a model folder without its manifest."""
    if not models.is_dir():
        return []
    return [f"{p.name}: {'scratch left' if p.name.startswith('.') else 'no manifest'}" for p in models.iterdir()
            if p.is_dir() and (p.name.startswith(".") or not (p / "manifest.json").is_file())]


KINDS_MADE = ("training", "tuning", "processing", "model", "endpoint_config", "endpoint")


def half_states(command: str, status: int, before: dict, folder, data, raw, endpoint_env) -> list[str]:
    """What a run of command left half done (a run that failed may leave nothing, or what a re-run carries on)."""
    found = []
    grew = {kind: [n for n in listed(kind) if n not in before[kind]] for kind in KINDS_MADE}
    for kind, asker in (("training", "train"), ("tuning", "tune"), ("processing", "preprocess")):
        asked = int(command == asker)
        if len(grew[kind]) > asked and not (kind == "training" and command == "tune"):  # a tuning job's trials
            found.append(f"{len(grew[kind])} {kind} jobs where {asked} was asked: {grew[kind]}")
    found += whole_models(folder / "models")
    if command == "upload" and status == 0:
        try:
            assert_mirrored(data)
        except AssertionError as err:
            found.append(f"S3 is not the folder: {err}")
    if command in ("train", "fetch") and status == 0:
        job = grew["training"][0] if command == "train" and grew["training"] else JOB
        if not (folder / "models" / job / "manifest.json").is_file():
            found.append(f"{command} ended 0 without the model of {job}")
    if command == "tune":
        for name in grew["tuning"]:
            if not (folder / "jobs" / name / "request.json").is_file():
                found.append(f"tuning job {name}: no record in JOBS_DIR")
    if command == "deploy":
        config = resolve(root=ROOT, environ=endpoint_env)
        known = {(e.get("endpoint"), e.get("endpoint_config"), e.get("model")) for e in history(config)}
        configs, models = {k[1] for k in known}, {k[2] for k in known}
        found += [f"endpoint configuration {c} with no record" for c in grew["endpoint_config"] if c not in configs]
        found += [f"model {m} with no record" for m in grew["model"] if m not in models]
        for name in grew["endpoint"]:
            served = client("sagemaker").describe_endpoint(EndpointName=name)["EndpointConfigName"]
            if (name, served) not in {k[:2] for k in known}:
                found.append(f"endpoint {name} ({served}) that no record knows")
        if len(grew["endpoint"]) > 1:
            found.append(f"{len(grew['endpoint'])} endpoints where one was asked")
        if status == 0 and not [e for e in history(config) if e["event"] == "deploy"]:
            found.append("deploy ended 0 without its record")
    if command == "preprocess":
        stray = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
        if status == 0 or stray:
            try:
                check_channels(data, raw)
                assert stray == [".preprocessed.json", "train", "validation"], stray
            except (AssertionError, FileNotFoundError) as err:
                found.append(f"DATA_DIR half installed: {stray}: {err}")
    return found


def one_line(status: int, said: str) -> bool:
    """Ended as sagemake ends a failure: a non-zero status, `sagemake: ...` last, no traceback."""
    lines = said.strip().splitlines()
    return status != 0 and bool(lines) and lines[-1].startswith("sagemake: ") and "Traceback" not in said


# Rounds of the path at each rate: (seed, AWS_MAX_ATTEMPTS). With 16 attempts a call fails all of them once in 65536
# at 50 %: every run must end right, each lost answer met as what it created. With 3, calls fail every attempt at
# every step, so runs also end in one line, at any point of a command: none may leave a half state.
ROUNDS = [(1, "16"), (2, "3")]


@pytest.mark.parametrize("rate", [0.15, 0.5], ids=["15%", "50%"])
def test_each_command_with_a_lost_create_answer_ends_right_or_in_one_line_and_leaves_no_half_state(
        aws, checkout, data, example_data, tmp_path, trained_model, quick_backoff, rate, capsys):
    """upload, train, fetch, deploy, tune and preprocess (ENV=prod), each run through the fault proxy at `rate`
    with the first answer to each of its creates lost once the server acted: each ends right or in one line, and
    none leaves a half state (two jobs or endpoints where one was asked, a configuration, model or endpoint no
    record knows, a partial model folder, a job without its record, a half-installed DATA_DIR)."""
    from test_aws_jobs import score

    import trainer.raw

    make_bucket()
    register_image(SageMakerExecutor(prod_config(checkout, example_data, tmp_path)).image())
    completed_job(trained_model)
    raw = tmp_path / "raw"
    trainer.raw.main(raw)
    for path in sorted((data / "train").iterdir())[20:]:  # 20 files: the 200-file upload has a test of its own
        path.unlink()
    ended, half = collections.Counter(), []
    for seed, attempts in ROUNDS:
        for channel in ("train", "validation"):  # new content: every file is sent again
            for path in (data / channel).iterdir():
                path.write_text(f"{seed},{path.read_text()}")
        processed = tmp_path / f"processed-{seed}"
        runs = {"upload": ([], data, contextlib.nullcontext()),
                "train": ([], example_data, SageMakerDriver(model=trained_model, step_seconds=0.2, endpoint=aws)),
                "fetch": ([JOB], example_data, contextlib.nullcontext()),
                "deploy": ([JOB], example_data, contextlib.nullcontext()),
                "tune": ([], example_data, TuningDriver(trained_model, score, step_seconds=0.2, endpoint=aws)),
                "preprocess": ([], processed, ProcessingDriver(tmp_path / "sagemaker", endpoint=aws))}
        for number, (command, (args, channels, driver)) in enumerate(runs.items()):
            before = {kind: listed(kind) for kind in KINDS_MADE}
            once = dict.fromkeys(LOST.get(command, []), "closed")
            with FaultProxy(aws, rate=rate, seed=100 * seed + number, slow_seconds=0.2, once=once) as proxy, driver:
                env = command_env(channels, tmp_path, proxy.url, PYTHONPATH=quick_backoff, AWS_MAX_ATTEMPTS=attempts,
                                  JOBS_DIR=str(tmp_path / "jobs"), RAW_DIR=str(raw), PREPROCESS_ARGS=f"--seed {seed}",
                                  ENDPOINT_NAME=f"sagemake-example-{seed}", ENDPOINT_INSTANCE_TYPE="ml.c5.xlarge",
                                  **TUNING)
                done = subprocess.run([*sagemake(checkout), command, *args], cwd=checkout, env=env,
                                      capture_output=True, text=True, timeout=300)
            outcome = "right" if done.returncode == 0 else "one line" if one_line(done.returncode, done.stderr) \
                else "neither"
            ended[outcome] += 1
            problems = half_states(command, done.returncode, before, tmp_path, channels, raw,
                                   {**env, "AWS_ENDPOINT_URL": aws})
            half += [f"{command}: {p}" for p in problems]
            assert outcome != "neither", (command, done.stderr)
            assert done.returncode == 0 or attempts != "16", (command, done.stderr)
            if done.returncode == 0:  # each lost answer met as the resource it created (a reused model: no create)
                lost = len(once) - len(proxy.once)
                assert done.stderr.count("an attempt whose answer was lost created it") == lost, done.stderr
    with capsys.disabled():  # the measure, in the test's output
        print(f"\n{rate:.0%}: {ended['right']} runs ended right, {ended['one line']} in one line, {len(half)} half "
              "states")
    assert half == [], half
