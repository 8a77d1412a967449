"""One sync at a time to a prefix (aws/synclock.py), with real `python -m sagemake upload` processes in two checkouts
against moto's server: the second refuses in one line naming the first's checkout, S3 ends as the first's folder,
then syncs one after the other are allowed; a lock left by a killed sync is taken over; Ctrl-C and SIGTERM remove it.

The first checkout's sync goes through tests/faultproxy.py with every answer held a moment, so that it is surely
under way while the second starts.
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from conftest import ROOT, copy_repo, sagemake, sigint_as_a_terminal_gives_it
from emulator import client, make_bucket, settings
from faultproxy import FaultProxy

from sagemake.aws import synclock
from sagemake.aws.sync import sync
from sagemake.cli import Exit, UserError
from sagemake.config import resolve

BUCKET = "train-bucket"
LOCK = "sagemake-example/sync-manifests/sync.lock"
PREFIX = "sagemake-example/data/train/"


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory):
    """Two users' checkouts of this repository."""
    folder = tmp_path_factory.mktemp("two checkouts")
    return copy_repo(folder / "first"), copy_repo(folder / "second")


def channel(folder, text, count=60):
    (folder / "train").mkdir(parents=True)
    for i in range(count):
        (folder / "train" / f"part-{i:03d}.csv").write_text(f"{text},{i}\n" * (1 + i % 5))
    return folder


def environment(data, endpoint, **extra) -> dict:
    return {**os.environ, "ENV": "prod", "DATA_DIR": str(data), "VENV": str(ROOT / ".venv"), **settings(),
            "AWS_ENDPOINT_URL": endpoint, **extra}


def s3_channel() -> dict[str, bytes]:
    s3 = client("s3")
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])}


def mirrors(data) -> bool:
    return s3_channel() == {PREFIX + p.name: p.read_bytes() for p in (data / "train").iterdir()}


def lock_exists() -> bool:
    return LOCK in {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.05)


def slow_upload(checkout, data, aws, **popen):
    """`make upload` in checkout, every answer held 0.2 s by a proxy: (the process, the proxy)."""
    proxy = FaultProxy(aws, rate=1.0, kinds=("slow",), slow_seconds=0.2).start()
    process = subprocess.Popen([*sagemake(checkout), "upload"], env=environment(data, proxy.url), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    return process, proxy


def test_a_second_checkout_syncing_other_data_to_the_prefix_refuses_in_one_line(aws, checkouts, tmp_path):
    first, second = checkouts
    make_bucket()
    ours, theirs = channel(tmp_path / "first data", "first"), channel(tmp_path / "second data", "second")
    process, proxy = slow_upload(first, ours, aws)
    try:
        wait_for(lock_exists)
        refused = subprocess.run([*sagemake(second), "upload"], env=environment(theirs, aws), capture_output=True,
                                 text=True, timeout=120)
        assert process.poll() is None  # the first was still syncing
        _, said = process.communicate(timeout=120)
    finally:
        proxy.stop()
    assert process.returncode == 0, said
    assert refused.returncode == Exit.BAD_INPUT, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"sagemake: another checkout is syncing to s3://{BUCKET}/sagemake-example/ (host "
                           f"{socket.gethostname()}, folder {first}, pid {process.pid}, since 20"), line
    assert line.endswith(f"wait for it to end, then run `make upload ENV=prod` (a lock not refreshed for "
                         f"{synclock.STALE // 60} minutes is taken over; it is s3://{BUCKET}/{LOCK})"), line
    assert mirrors(ours) and not lock_exists()  # S3 is the first's folder, untouched by the second
    # One after the other, from either checkout: each makes S3 its folder.
    again = subprocess.run([*sagemake(second), "upload"], env=environment(theirs, aws), capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert mirrors(theirs) and not lock_exists()


@pytest.mark.parametrize("signal_sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_during_a_sync_removes_its_lock(aws, checkouts, tmp_path, signal_sent):
    first, _ = checkouts
    make_bucket()
    ours = channel(tmp_path / "data", "first", count=200)
    process, proxy = slow_upload(first, ours, aws, preexec_fn=sigint_as_a_terminal_gives_it)
    try:
        wait_for(lock_exists)
        process.send_signal(signal_sent)
        _, said = process.communicate(timeout=120)
    finally:
        proxy.stop()
    assert process.returncode == Exit.INTERRUPTED, said
    assert not lock_exists(), said


def put_lock(**owner):
    client("s3").put_object(Bucket=BUCKET, Key=LOCK, Body=json.dumps(
        {"host": "elsewhere", "folder": "/home/them/project", "pid": 1, "since": "2026-12-01T10:00:00+00:00",
         "token": "theirs", **owner}).encode())


def test_a_lock_left_on_this_host_by_a_process_gone_is_taken_over(aws, checkouts, tmp_path):
    first, _ = checkouts
    make_bucket()
    ours = channel(tmp_path / "data", "first")
    gone = subprocess.Popen(["true"])
    gone.wait()
    put_lock(host=socket.gethostname(), machine=synclock.machine(), folder=str(first), pid=gone.pid)
    done = subprocess.run([*sagemake(first), "upload"], env=environment(ours, aws), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"==> upload: took over the sync lock of host {socket.gethostname()}, folder {first}, pid {gone.pid}, " \
        "since 2026-12-01T10:00:00+00:00: it was stale" in done.stderr
    assert mirrors(ours) and not lock_exists()


def prod_config(tmp_path, data):
    return resolve(root=tmp_path / "project", environ={"ENV": "prod", "DATA_DIR": str(data), "CHANNELS": "train",
                                                       **settings()})


def test_a_lock_from_another_host_is_taken_over_once_not_refreshed_for_stale_seconds(aws, tmp_path, monkeypatch):
    make_bucket()
    config = prod_config(tmp_path, channel(tmp_path / "data", "first"))
    monkeypatch.setattr(synclock, "STALE", 2)
    put_lock()
    with pytest.raises(UserError, match="another checkout is syncing to .*host elsewhere, folder /home/them/project"):
        sync(config)
    assert lock_exists() and not s3_channel()
    time.sleep(2.5)  # by S3's clock: the lock's LastModified against the answer's Date
    sync(config)
    assert mirrors(tmp_path / "data") and not lock_exists()


def refreshing_sync(tmp_path, monkeypatch):
    """(DATA_DIR, config, AWS session) of a sync whose lock is rewritten every 0.1 s: a test hooks the session's
    requests to act between two rewrites."""
    from sagemake.aws import api as cloud

    make_bucket()
    data = channel(tmp_path / "data", "first")
    config = prod_config(tmp_path, data)
    monkeypatch.setattr(synclock, "REFRESH", 0.1)
    return data, config, cloud.session(config)


def test_a_sync_whose_lock_was_taken_over_writes_no_manifest(aws, tmp_path, monkeypatch):
    """The holder rewrites its lock every REFRESH seconds; when another sync took it over meanwhile (found it stale),
    this one fails in one line before its manifest is written."""
    data, config, session = refreshing_sync(tmp_path, monkeypatch)
    taken = []

    def take_over(request, **_):
        if not taken and request.url.endswith("part-000.csv"):
            taken.append(1)
            put_lock()
            time.sleep(0.5)  # a rewrite of the lock meanwhile learns it was taken over

    session.events.register("before-send.s3.PutObject", take_over)
    with pytest.raises(UserError, match="another sync took over the lock .*host elsewhere"):
        sync(config, session)
    assert "sagemake-example/sync-manifests/train.json" not in {
        o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}


@pytest.mark.parametrize("machine", ["another", None])
def test_a_lock_of_a_dead_pid_from_another_machine_of_the_same_hostname_is_kept(aws, tmp_path, monkeypatch, machine):
    """Two containers or VMs can share a hostname, each pid its own machine's: a pid gone here says nothing of the
    lock's; so is a lock from a machine that cannot be told (machine() None): only its age counts."""
    make_bucket()
    config = prod_config(tmp_path, channel(tmp_path / "data", "first"))
    if machine is None:
        monkeypatch.setattr(synclock, "machine", lambda: None)
    gone = subprocess.Popen(["true"])
    gone.wait()
    put_lock(host=socket.gethostname(), machine=machine, pid=gone.pid)
    with pytest.raises(UserError, match=f"another checkout is syncing to .*host {socket.gethostname()}, folder "):
        sync(config)
    assert lock_exists() and not s3_channel()


def test_a_lock_taken_over_before_a_refresh_could_tell_writes_no_manifest(aws, tmp_path):
    """Another sync took the lock over (this one's laptop slept past STALE) and the refresher has not looked since
    (REFRESH is long): the rewrite before the manifest learns it, and the sync fails in one line."""
    from sagemake.aws import api as cloud

    make_bucket()
    config = prod_config(tmp_path, channel(tmp_path / "data", "first"))
    session = cloud.session(config)
    taken = []

    def take_over(request, **_):
        if not taken and request.url.endswith("part-000.csv"):
            taken.append(1)
            put_lock()

    session.events.register("before-send.s3.PutObject", take_over)
    with pytest.raises(UserError) as raised:
        sync(config, session)
    assert str(raised.value).startswith(f"another sync took over the lock s3://{BUCKET}/{LOCK} while this one ran "
                                        "(host elsewhere, folder /home/them/project, pid 1, since "), raised.value
    assert "sagemake-example/sync-manifests/train.json" not in {
        o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert json.loads(client("s3").get_object(Bucket=BUCKET, Key=LOCK)["Body"].read())["token"] == "theirs"


def test_a_rewrite_of_the_lock_accepted_whose_answer_was_lost_is_not_a_takeover(aws, tmp_path, monkeypatch):
    """A rewrite S3 accepted but whose answer was lost: sent again If-Match the old ETag, S3 refuses it (the ETag
    changed, as under SSE-KMS). The lock still holds this sync's token: it carries on, and deletes it at the end;
    whether the refresher or the rewrite before the manifest met it."""
    data, config, session = refreshing_sync(tmp_path, monkeypatch)
    rewrites = []

    def accepted_then_lost(request, **_):
        if request.url.endswith("part-000.csv"):
            time.sleep(0.5)  # the refresher rewrites the lock meanwhile
        if request.url.endswith(LOCK) and "If-Match" in request.headers and not rewrites:
            rewrites.append(1)  # what S3 holds now: our lock, under another ETag
            s3 = client("s3")
            held = s3.get_object(Bucket=BUCKET, Key=LOCK)["Body"].read()
            s3.put_object(Bucket=BUCKET, Key=LOCK, Body=held + b"\n")

    session.events.register("before-send.s3.PutObject", accepted_then_lost)
    sync(config, session)
    assert rewrites and mirrors(data) and not lock_exists()
