"""`make upload` with nothing changed, without boto3 (unchanged.everywhere, s3read.py): its requests are signed and
addressed as boto3 signs and addresses them (botocore itself is the oracle), it goes where boto3 would go or not at
all, and against moto's server, through a recording and then a faulty proxy, it answers as the sync would: on names
that need encoding too, with any change anywhere sending the whole sync, and a network that drops requests costing
time, never a wrong answer.
"""

import hashlib
import os
import subprocess
import sys
import urllib.parse
from datetime import datetime, timezone

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from conftest import ROOT, copy_repo, sagemake
from emulator import client, make_bucket, settings
from faultproxy import FaultProxy

from sagemake.aws import s3read
from sagemake.aws.s3read import Reads
from sagemake.cli import Exit
from sagemake.config import resolve

WHEN = datetime(2026, 12, 2, 19, 45, 7, tzinfo=timezone.utc)
HOSTILE = "train/a b+c%41 (ü)~'&=;x.csv"  # a key that every encoding step must get right
REQUESTS = [("HEAD", f"sagemake-example/sync-manifests/{HOSTILE}", []),
            ("GET", "", [("list-type", "2"), ("prefix", "sagemake-example/data/train/"), ("max-keys", "101"),
                         ("encoding-type", "url"), ("start-after", f"sagemake-example/data/{HOSTILE}")]),
            ("GET", "", [("location", "")])]


def config(**environ):
    return resolve(root=ROOT, environ={"ENV": "prod", **settings(), **environ})


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzE+token/with=chars"])
@pytest.mark.parametrize(("scheme", "host", "virtual"), [("http", "127.0.0.1:4566", False),
                                                         ("https", "s3.eu-central-1.amazonaws.com", True)])
@pytest.mark.parametrize(("method", "key", "query"), REQUESTS, ids=["HeadObject", "ListObjectsV2", "GetBucketLocation"])
def test_each_request_is_signed_as_botocore_signs_it(monkeypatch, token, scheme, host, virtual, method, key, query):
    keys = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    reads = Reads(scheme, host, "eu-central-1", keys, virtual=virtual)
    host, path, target = reads.target("train-bucket", key, query)
    ours = s3read.sign(method, host, path, query, "eu-central-1", keys, WHEN)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN.replace(tzinfo=None))
    theirs = AWSRequest(method=method, url=f"{scheme}://{host}{target}")
    botocore.auth.S3SigV4Auth(Credentials(*keys), "s3", "eu-central-1").add_auth(theirs)
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == theirs.headers["X-Amz-Content-SHA256"]
    assert ours.get("x-amz-security-token") == theirs.headers.get("X-Amz-Security-Token")


def boto3_url(method: str, key: str, query: list, region: str = "eu-central-1") -> str:
    """The URL boto3 sends the request to, in the environment as it is (nothing is sent)."""
    class Sent(Exception):
        pass

    def stop(request, **_):
        raise Sent(request.url)

    s3 = boto3.Session(region_name=region).client("s3")
    s3.meta.events.register("before-send.s3", stop)
    asked = dict(query)
    try:
        if method == "HEAD":
            s3.head_object(Bucket="train-bucket", Key=key)
        elif "location" in asked:
            s3.get_bucket_location(Bucket="train-bucket")
        else:
            s3.list_objects_v2(Bucket="train-bucket", Prefix=asked["prefix"], MaxKeys=int(asked["max-keys"]),
                               StartAfter=asked["start-after"])
    except Sent as sent:
        return str(sent)
    raise AssertionError("boto3 sent nothing")


def same_url(ours: str, theirs: str) -> bool:
    """The same scheme, host and path, and the same query (in any order; boto3's values of `location` differ only
    in the form of an empty value)."""
    a, b = urllib.parse.urlsplit(ours), urllib.parse.urlsplit(theirs)
    query = [sorted(urllib.parse.parse_qsl(url.query, keep_blank_values=True)) for url in (a, b)]
    return (a.scheme, a.netloc, a.path, query[0]) == (b.scheme, b.netloc, b.path, query[1])


@pytest.mark.parametrize("endpoint", [{}, {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
                                      {"AWS_ENDPOINT_URL": "https://minio.example.com"},
                                      {"AWS_ENDPOINT_URL": "http://192.0.2.1:9000",
                                       "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4566"},
                                      {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
                                       "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}],
                         ids=["AWS", "an emulator", "a named server", "S3's own endpoint first", "endpoints ignored"])
@pytest.mark.parametrize(("method", "key", "query"), REQUESTS, ids=["HeadObject", "ListObjectsV2", "GetBucketLocation"])
def test_each_request_goes_where_boto3_sends_it(monkeypatch, tmp_path, endpoint, method, key, query):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    environ = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
               "AWS_CONFIG_FILE": str(tmp_path / "none"), **endpoint}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    reads = s3read.reads(config(), os.environ)
    host, _, target = reads.target("train-bucket", key, query)
    ours = f"{reads.scheme}://{host}{target}"
    assert same_url(ours, boto3_url(method, key, query)), (ours, boto3_url(method, key, query))


@pytest.mark.parametrize("setting", [
    {"AWS_ACCESS_KEY_ID": ""}, {"AWS_SECRET_ACCESS_KEY": ""}, {"HTTPS_PROXY": "http://192.0.2.1:3128"},
    {"http_proxy": "http://192.0.2.1:3128"}, {"AWS_USE_FIPS_ENDPOINT": "true"}, {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
    {"config": "[default]\nendpoint_url = http://192.0.2.1\n"},
    {"config": "[default]\ns3 =\n  addressing_style = virtual\n"},
    {"config": "[default]\nca_bundle = /etc/other.pem\n"},
    {"AWS_PROFILE": "work"}, {"AWS_DEFAULT_PROFILE": "work"},
    {"config": "not [an ini file"},
    {"S3_BUCKET": "dotted.bucket.name"}, {"AWS_REGION": "cn-north-1"}, {"AWS_REGION": "us-gov-west-1"},
    {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566/under/a/path"},
], ids=lambda setting: " ".join(setting))
def test_it_does_not_ask_where_boto3_might_connect_otherwise(tmp_path, setting):
    environ = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
               "AWS_CONFIG_FILE": str(tmp_path / "config")}
    (tmp_path / "config").write_text("[default]\nregion = eu-central-1\noutput = json\n[profile work]\nregion = x\n")
    assert s3read.reads(config(), environ) is not None  # without the setting, it asks
    setting = dict(setting)
    ours = {name: setting.pop(name) for name in ("S3_BUCKET", "AWS_REGION") if name in setting}
    if "config" in setting:
        (tmp_path / "config").write_text(setting.pop("config"))
    assert s3read.reads(config(**ours), {**environ, **setting}) is None


def test_the_check_without_boto3_loads_no_boto3():
    loaded = subprocess.run([sys.executable, "-c", "import sys; "
                             "import sagemake.targets.upload, sagemake.aws.unchanged; "
                             "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore'}))"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("checkout"))


NAMES = ["a b+c%41 (ü)~'&=;x.csv", "nested/dir/ä ö.csv", *(f"part-{i:04d}.csv" for i in range(150))]


@pytest.fixture
def channel(tmp_path):
    """DATA_DIR with one channel, train, of files whose names need encoding (one page of the listing)."""
    folder = tmp_path / "data/train"
    for index, name in enumerate(NAMES):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{index},row\n" * (1 + index % 5))
    return folder


def upload(checkout, folder, proxy, status=0, **extra) -> tuple[subprocess.CompletedProcess, list[tuple]]:
    """`make upload`'s script through the proxy, with the settings `extra`: what it said, and the requests it sent."""
    before = len(proxy.seen)
    env = {**os.environ, "ENV": "prod", "DATA_DIR": str(folder.parent), "CHANNELS": "train", **settings(**extra),
           "VENV": str(ROOT / ".venv"), "AWS_ENDPOINT_URL": proxy.url}
    done = subprocess.run([*sagemake(checkout), "upload"], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == status, done.stderr
    return done, proxy.seen[before:]


def by_sagemake(sent) -> bool:
    return all(agent == "sagemake" for _, _, agent, _ in sent)


def s3_keys() -> dict[str, str]:
    s3 = client("s3")
    return {o["Key"]: o["ETag"].strip('"') for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="train-bucket", Prefix="sagemake-example/data/train/") for o in page.get("Contents", [])}


def test_an_unchanged_channel_of_encoded_names_is_three_requests_without_boto3_and_any_change_the_whole_sync(
        aws, checkout, channel):
    make_bucket()
    with FaultProxy(aws) as proxy:
        first, sent = upload(checkout, channel, proxy)
        assert f"upload: train: {len(NAMES)} uploaded" in first.stderr and not by_sagemake(sent)
        assert set(s3_keys()) == {f"sagemake-example/data/train/{name}" for name in NAMES}

        again, sent = upload(checkout, channel, proxy)
        assert f"upload: train: 0 uploaded (0.0 MB), {len(NAMES)} unchanged, 0 deleted" in again.stderr
        assert by_sagemake(sent) and len(sent) == 3, sent  # the region, the manifest, the one page of 152 keys
        assert sorted(method for method, *_ in sent) == ["GET"] * 2 + ["HEAD"]

        (channel / NAMES[0]).write_text("other content\n")
        changed, sent = upload(checkout, channel, proxy)
        assert "upload: train: 1 uploaded" in changed.stderr and not by_sagemake(sent)

        client("s3").delete_object(Bucket="train-bucket", Key=f"sagemake-example/data/train/{NAMES[1]}")
        behind, sent = upload(checkout, channel, proxy)  # seen in the listing, and put back by boto3's path
        assert "ä ö.csv is missing (S3 no longer matches the last sync's manifest)" in behind.stderr, behind.stderr
        assert "upload: train: 1 uploaded" in behind.stderr and not by_sagemake(sent)
    assert len(s3_keys()) == len(NAMES)
    assert s3_keys()[f"sagemake-example/data/train/{NAMES[0]}"] == hashlib.md5(b"other content\n").hexdigest()


def test_a_network_that_drops_requests_costs_time_never_a_wrong_answer(aws, checkout, channel):
    make_bucket()
    with FaultProxy(aws) as proxy:
        upload(checkout, channel, proxy)
    missed = 0  # unchanged syncs whose check without boto3 met a fault, then were done by boto3's path
    with FaultProxy(aws, rate=0.15, seed=7, slow_seconds=0.5) as proxy:
        for _ in range(8):
            done, sent = upload(checkout, channel, proxy)
            assert f"upload: train: 0 uploaded (0.0 MB), {len(NAMES)} unchanged, 0 deleted" in done.stderr
            missed += any(agent == "sagemake" and fault for _, _, agent, fault in sent) and not by_sagemake(sent)
    assert missed and proxy.broken_total
    assert len(s3_keys()) == len(NAMES)


def test_a_bucket_in_another_region_is_left_to_the_sync_which_refuses_it(aws, checkout, channel):
    """Nothing changed, but the bucket is not in AWS_REGION: the check without boto3 does not say unchanged, and the
    sync's own check of the region ends the command with its one line."""
    make_bucket()
    with FaultProxy(aws) as proxy:
        upload(checkout, channel, proxy)
        done, sent = upload(checkout, channel, proxy, status=Exit.BAD_INPUT, AWS_REGION="us-west-2")
    assert "not in AWS_REGION=us-west-2" in done.stderr, done.stderr
    assert any(agent == "sagemake" for _, _, agent, _ in sent) and not by_sagemake(sent)


def test_an_unchanged_upload_loads_no_mlflow(aws, checkout, channel):
    make_bucket()
    with FaultProxy(aws) as proxy:
        upload(checkout, channel, proxy)
        again, _ = upload(checkout, channel, proxy, PYTHONPROFILEIMPORTTIME="1")
    assert "unchanged" in again.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines() if line.startswith("import time")}
    assert "sagemake.aws.unchanged" in loaded  # the profile is there
    assert not {name for name in loaded if name.split(".")[0] in ("mlflow", "boto3")}
