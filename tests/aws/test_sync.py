"""The sync's manifest against moto's server: an unchanged channel costs three requests and one listing page per
PAGE files, in one round trip; every change, made locally or behind sagemake's back in S3, ends with S3 holding
exactly the folder; a sync cut off midway is followed by a whole one; a file edited while it is uploaded is sent
again (or the sync fails in one line, leaving no manifest), so the manifest always says what S3 holds.

Every HTTP request boto3 sends (retries included) is recorded by a botocore `before-send` hook on the session.
Past the request counts, the unchanged check's pages are of SMALL keys instead of PAGE, so that a channel of 40
files is four pages without uploading thousands: the same code, at a hundredth of the size.
"""

import hashlib
import json
import os
import threading
import urllib.parse
from pathlib import Path

import pytest
from emulator import client, make_bucket, settings
from faultproxy import FaultProxy

from sagemake import data
from sagemake.aws import api as cloud
from sagemake.aws import unchanged
from sagemake.aws.sync import sync
from sagemake.aws.unchanged import PAGE
from sagemake.cli import UserError
from sagemake.config import resolve

BUCKET = "train-bucket"
EMULATOR = {}  # url: moto's server, for reading S3 past the proxy
CHANNEL = "sagemake-example/data/train/"
MANIFEST = "sagemake-example/sync-manifests/train.json"
LOCK = "sagemake-example/sync-manifests/sync.lock"
SMALL = 10  # keys per page of the unchanged check, in the tests of what it catches
FILES = 40  # their channel: four pages, each starting after the last key of the one before


def write_channel(folder, count, start=0, text="row"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (folder / f"part-{i:05d}.csv").write_text(f"{text},{i}\n" * (1 + i % 7))


@pytest.fixture
def small(project, monkeypatch):
    """The project, with the unchanged check's pages of SMALL keys."""
    monkeypatch.setattr(unchanged, "PAGE", SMALL)
    return project


@pytest.fixture
def project(aws, tmp_path, monkeypatch):
    """ENV=prod with one channel, train, in DATA_DIR (empty for now), its ETag cache under the project's build/. The
    emulator answers at most unchanged.PAGE keys per listing, as S3 answers at most 1,000 (moto has no such limit)."""
    from moto.s3.models import S3Backend

    listed = S3Backend.list_objects_v2
    monkeypatch.setattr(S3Backend, "list_objects_v2", lambda self, *args, max_keys, **kwargs: listed(
        self, *args, max_keys=min(max_keys, unchanged.PAGE), **kwargs))
    make_bucket()
    EMULATOR["url"] = aws
    config = resolve(root=tmp_path / "project", environ={"ENV": "prod", "DATA_DIR": str(tmp_path / "data"),
                                                         "CHANNELS": "train", **settings()})
    return config, tmp_path / "data/train"


class Recorder:
    """Every HTTP request the session's clients send, as (method, path, query), in order of sending."""

    def __init__(self, session):
        self.sent, self.lock = [], threading.Lock()
        session.events.register("before-send.s3", self)

    def __call__(self, request, **_):
        url = urllib.parse.urlsplit(request.url)
        query = tuple(sorted(urllib.parse.parse_qsl(url.query, keep_blank_values=True)))
        with self.lock:
            self.sent.append((request.method, urllib.parse.unquote(url.path), query))


def counted_sync(config):
    """sync(config), and the requests it sent."""
    session = cloud.session(config)
    recorder = Recorder(session)
    return sync(config, session)["train"], recorder.sent


def s3_channel() -> dict[str, str]:
    """{key: MD5 of its content} of the channel's objects (small ones: their ETag), from the emulator itself (past
    any proxy the sync goes through)."""
    s3 = client("s3", EMULATOR["url"])
    return {o["Key"]: o["ETag"].strip('"') for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=CHANNEL) for o in page.get("Contents", [])}


def assert_mirrored(folder):
    """S3 holds the channel exactly: every file, with its content, and nothing else."""
    local = {CHANNEL + (path / name).relative_to(folder).as_posix(): hashlib.md5((path / name).read_bytes()).hexdigest()
             for path, _, names in ((Path(p), d, n) for p, d, n in os.walk(folder, followlinks=True)) for name in names}
    assert s3_channel() == local


def unchanged_check(sent, folder, page=PAGE):
    """The requests of an unchanged re-sync of `folder`: the bucket's region, the manifest's metadata, and every
    page of the listing, each starting after the last key of the one before, none of more than `page` keys (S3's
    most), the last one key longer than the folder's keys left."""
    keys = sorted(CHANNEL + p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    count = len(keys)
    pages = [dict(query) for method, path, query in sent if method == "GET" and dict(query).get("list-type") == "2"]
    others = sorted(request for request in sent if dict(request[2]).get("list-type") != "2")
    assert others == [("GET", f"/{BUCKET}", (("location", ""),)), ("HEAD", f"/{BUCKET}/{MANIFEST}", ())]
    assert len(pages) == 1 + count // page and all(p["prefix"] == CHANNEL for p in pages)
    assert sorted(int(p["max-keys"]) for p in pages) == sorted([page] * (count // page) + [count % page + 1])
    assert sorted(p.get("start-after", "") for p in pages) == [""] + [
        keys[start - 1] for start in range(page, count + 1, page)]


def changes(sent):
    """The requests that change S3, but for the sync lock's."""
    return [r for r in sent if r[0] in ("PUT", "POST", "DELETE") and r[1] != f"/{BUCKET}/{LOCK}"]


def test_an_unchanged_resync_costs_three_requests_and_a_page_per_thousand_files(project):
    config, folder = project
    for count in (300, 2000, 2001):
        before = len(list(folder.glob("*")))
        write_channel(folder, count - before, start=before)
        first, _ = counted_sync(config)
        assert first[0] == count - before
        again, sent = counted_sync(config)
        assert again == (0, count, 0, 0)
        assert len(sent) == 3 + count // PAGE, sent
        unchanged_check(sent, folder)
    assert_mirrored(folder)


def test_the_manifest_is_beside_the_channel_and_says_what_s3_holds(small):
    config, folder = small
    write_channel(folder, 150)
    (folder / "sub").mkdir()
    (folder / "sub/more.csv").write_text("more\n")
    counted_sync(config)
    s3 = client("s3")
    listed = {o["Key"]: o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=CHANNEL)
              for o in page["Contents"]}
    assert len(listed) == 151  # the job's prefix holds the folder's files and nothing else
    head = s3.head_object(Bucket=BUCKET, Key=MANIFEST)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    digest = data.summary(config, {"train": folder})["train"]["digest"]  # the digest a job records
    assert head["Metadata"] == {unchanged.DIGEST: digest} and manifest["digest"] == digest
    assert manifest["channel"] == f"s3://{BUCKET}/{CHANNEL}" and manifest["files"] == 151
    assert {CHANNEL + name: (size, tag) for name, size, tag in manifest["contents"]} == {
        key: (o["Size"], o["ETag"].strip('"')) for key, o in listed.items()}
    assert manifest["bytes"] == sum(o["Size"] for o in listed.values())


@pytest.mark.parametrize("change", ["changed", "added", "deleted", "renamed"])
def test_a_change_to_the_folder_syncs_only_it_then_costs_the_unchanged_check_again(small, monkeypatch, change):
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    middle = folder / "part-00015.csv"
    if change == "changed":
        middle.write_text("other content\n")
    elif change == "added":
        (folder / "part-00015b.csv").write_text("new\n")
    elif change == "deleted":
        middle.unlink()
    else:
        middle.rename(folder / "part-00015-renamed.csv")
    result, sent = counted_sync(config)
    uploaded, deleted = {"changed": (1, 0), "added": (1, 0), "deleted": (0, 1), "renamed": (1, 1)}[change]
    assert (result[0], result[2]) == (uploaded, deleted)
    delete = sent.index(("DELETE", f"/{BUCKET}/{MANIFEST}", ()))
    assert not changes(sent[:delete])  # before anything changed in S3 (but the sync lock)
    assert changes(sent)[-1][:2] == ("PUT", f"/{BUCKET}/{MANIFEST}")  # the new manifest, last
    assert_mirrored(folder)
    again, sent = counted_sync(config)
    assert again == (0, len(list(folder.glob("*"))), 0, 0)
    unchanged_check(sent, folder, SMALL)


def behind_our_back(where: str, how: str) -> str:
    """Changes the channel in S3 as something other than sagemake would; returns the key it touched."""
    s3 = client("s3", EMULATOR["url"])
    key = CHANNEL + {"first": "part-00000.csv", "middle": "part-00015.csv", "last": "part-00039.csv",
                     "before": "a-extra.csv", "after": "zz-extra.csv", "middle-added": "part-00015a.csv",
                     "page-edge": "part-00019a.csv"}[where]
    if how == "deleted":
        s3.delete_object(Bucket=BUCKET, Key=key)
    elif how == "overwritten":  # the same size, other content: only the ETag tells
        old = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(b ^ 1 for b in old))
    else:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"written behind sagemake's back\n")
    return key


@pytest.mark.parametrize(("where", "how"), [("first", "deleted"), ("first", "overwritten"), ("last", "deleted"),
                                            ("last", "overwritten"), ("before", "added"), ("after", "added"),
                                            ("middle", "deleted"), ("middle", "overwritten"),
                                            ("middle-added", "added"), ("page-edge", "added")])
def test_s3_changed_behind_our_back_anywhere_is_caught_and_repaired(small, capsys, where, how):
    """An object deleted, overwritten with other content of the same size, or added, anywhere in a channel of four
    pages (at either end, in the middle, between two pages), by something other than sagemake: the next sync says
    so in one line and puts S3 back as the folder."""
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    assert counted_sync(config)[0] == (0, FILES, 0, 0)
    key = behind_our_back(where, how)
    result, _ = counted_sync(config)
    said = {"deleted": "is missing", "overwritten": "has other content", "added": "is not in the folder"}[how]
    assert f"upload: s3://{BUCKET}/{key} {said} (S3 no longer matches the last sync's manifest): comparing every " \
        "object" in capsys.readouterr().err
    assert result == ((0, FILES, 1, 0) if how == "added" else (1, FILES - 1, 0, result[3]))
    assert_mirrored(folder)
    assert counted_sync(config)[0] == (0, FILES, 0, 0)


@pytest.mark.parametrize("reader", ["boto3", "s3read"])
def test_an_object_after_a_full_last_page_is_seen_by_either_reader(small, reader):
    """A channel of a whole number of pages: S3 answers at most PAGE keys, so what is after the last key is asked for
    on its own, by the sync's reader and by s3read's alike."""
    from concurrent.futures import ThreadPoolExecutor

    from sagemake.aws import s3read
    from sagemake.aws.sync import Reads
    from sagemake.data import CACHE, EtagCache

    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    key = behind_our_back("after", "added")
    url = urllib.parse.urlsplit(EMULATOR["url"])
    reads = Reads(client("s3")) if reader == "boto3" else s3read.Reads(
        url.scheme, url.netloc, config["AWS_REGION"], ("testing", "testing", None))
    with ThreadPoolExecutor(unchanged.ASKERS) as pool:
        checked = unchanged.check(reads, pool, folder, data.files(folder), f"s3://{BUCKET}/{CHANNEL}",
                                  EtagCache(config.root / CACHE), f"s3://{BUCKET}/{MANIFEST}", True)
    assert (checked.unchanged, checked.why) == (False, f"s3://{BUCKET}/{key} is not in the folder")


def test_the_channel_emptied_in_s3_is_uploaded_again(small):
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    client("s3").delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in s3_channel()]})
    assert counted_sync(config)[0][:3] == (FILES, 0, 0)
    assert_mirrored(folder)


def test_a_manifest_lost_or_of_other_data_costs_one_listing_and_uploads_nothing(small):
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    s3 = client("s3")
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=b"{}", Metadata={unchanged.DIGEST: "0" * 64})
    result, sent = counted_sync(config)
    assert result == (0, FILES, 0, 0) and not [s for s in changes(sent) if s[1] != f"/{BUCKET}/{MANIFEST}"]
    unchanged_check(counted_sync(config)[1], folder, SMALL)  # the manifest written again holds
    s3.delete_object(Bucket=BUCKET, Key=MANIFEST)
    assert counted_sync(config)[0] == (0, FILES, 0, 0)
    unchanged_check(counted_sync(config)[1], folder, SMALL)


def check_pages(sent):
    """The unchanged check's pages among the requests sent (the full listing gives no max-keys)."""
    return [query for method, _, query in sent if method == "GET" and "max-keys" in dict(query)]


def test_the_pages_go_with_the_manifests_metadata_once_the_channel_was_synced_from_here(small):
    """unchanged.SYNCED, a hint: after a sync of the same folder from this checkout, the pages are asked for at once
    (wasted when the folder changed, then waited for before the first change); a first sync, or one without the
    hint, asks for the manifest's metadata first."""
    config, folder = small
    write_channel(folder, FILES)
    assert not check_pages(counted_sync(config)[1])
    (folder / "part-00015.csv").write_text("other content\n")
    _, sent = counted_sync(config)
    delete = sent.index(("DELETE", f"/{BUCKET}/{MANIFEST}", ()))
    assert len(check_pages(sent[:delete])) == 1 + FILES // SMALL and not check_pages(sent[delete:])
    (config.root / unchanged.SYNCED).unlink()
    (folder / "part-00015.csv").write_text("changed again\n")
    assert not check_pages(counted_sync(config)[1])
    assert_mirrored(folder)
    assert counted_sync(config)[0] == (0, FILES, 0, 0)


@pytest.mark.parametrize("then", ["carried on", "reverted"])
def test_a_sync_cut_off_midway_leaves_no_manifest_and_the_next_ends_whole(small, monkeypatch, then):
    """Cut off after a few uploads of a change; then run again with the change, or with the folder put back as it
    was at the last whole sync (where a manifest left in place would have said: unchanged)."""
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    before = {p: p.read_bytes() for p in folder.iterdir()}
    write_channel(folder, 20, start=10, text="changed")  # part-00010..00029
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # The region, the manifest's metadata with the unchanged check's 4 pages (this folder was synced from here
    # before), the sync lock, the manifest's deletion, the listing, then 5 uploads: then no network.
    with FaultProxy(EMULATOR["url"], fail_after=14, kinds=("reset", "closed")) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with pytest.raises(cloud.AwsUnavailable):
            counted_sync(config)
        changed = {CHANNEL + p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()
                   if p.read_text().startswith("changed")}
        arrived = [k for k, tag in s3_channel().items() if changed.get(k) == tag]
        assert 5 <= len(arrived) < 20 and proxy.broken_total > 0
        listed = client("s3", EMULATOR["url"]).list_objects_v2(Bucket=BUCKET).get("Contents", [])
        assert MANIFEST not in {o["Key"] for o in listed}
        if then == "reverted":
            for path, content in before.items():
                path.write_bytes(content)
        # The lock the cut-off sync could not remove: from another process (as a second make upload is) it would be
        # taken over at once, its process being gone (test_sync_lock.py).
        client("s3", EMULATOR["url"]).delete_object(Bucket=BUCKET, Key=LOCK)
        proxy.heal()
        result, sent = counted_sync(config)
    assert result[:3] == ((len(arrived), FILES - len(arrived), 0) if then == "reverted" else
                          (20 - len(arrived), FILES - 20 + len(arrived), 0))
    assert_mirrored(folder)
    monkeypatch.setenv("AWS_ENDPOINT_URL", EMULATOR["url"])
    unchanged_check(counted_sync(config)[1], folder, SMALL)


def test_a_channels_files_are_walked_in_the_order_its_digest_takes_them(tmp_path):
    """data.files walks with os.scandir for speed: the same files, in the same order, as sorted Path.rglob, and
    through the links inside DATA_DIR as if they were what they point at."""
    folder = tmp_path / "channel"
    for name in ["a/b", "a-c", "a.b", "a/z/y", "a/z0", "b", "B", ".hidden", "a/.x/y", "ü", "z/a b", "a/b2/c"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    copy = tmp_path / "copy"
    (copy / "a").mkdir(parents=True)
    for name in ["a/b", "a/z/y", "a/z0", "a/.x/y", "a/b2/c"]:
        (copy / "link-to-folder" / name[2:]).parent.mkdir(parents=True, exist_ok=True)
        (copy / "link-to-folder" / name[2:]).write_text(name)
    (copy / "link-to-file").write_text("b")
    (folder / "link-to-folder").symlink_to(folder / "a")
    (folder / "link-to-file").symlink_to(folder / "b")
    (folder / "dangling").symlink_to(folder / "nothing")
    walked = data.files(folder)
    assert [p.relative_to(folder) for p in walked] == sorted(
        [p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
        + [p.relative_to(copy) for p in copy.rglob("*") if p.is_file()])
    assert [p.relative_to(folder).as_posix() for p in walked][:5] == [".hidden", "B", "a/.x/y", "a/b", "a/b2/c"]


class Held:
    """A botocore hook on the session that, at the first PutObject of `key` (each one, with every=True), runs
    `meanwhile` before the request is sent: a file edited while an upload is under way."""

    def __init__(self, session, key: str, meanwhile, every: bool = False):
        self.key, self.meanwhile, self.every, self.times = CHANNEL + key, meanwhile, every, 0
        session.events.register("before-send.s3.PutObject", self)

    def __call__(self, request, **_):
        if urllib.parse.unquote(urllib.parse.urlsplit(request.url).path) == f"/{BUCKET}/{self.key}" and (
                self.every or not self.times):
            self.times += 1
            self.meanwhile()


def held_sync(config, key, meanwhile, every=False):
    session = cloud.session(config)
    held = Held(session, key, meanwhile, every)
    return sync(config, session)["train"], held.times


def replace(path, text):
    """The file rewritten as editors and tools do: written beside it, then renamed over it."""
    (path.parent / f".{path.name}.new").write_text(text)
    (path.parent / f".{path.name}.new").rename(path)


def assert_manifest_is_s3():
    """The manifest lists exactly what S3 holds under the channel: every key, its size and its ETag."""
    s3 = client("s3", EMULATOR["url"])
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    listed = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=CHANNEL)
              for o in page["Contents"]]
    assert {CHANNEL + name: (size, tag) for name, size, tag in manifest["contents"]} == {
        o["Key"]: (o["Size"], o["ETag"].strip('"')) for o in listed}


@pytest.mark.parametrize("edited", ["another file, unchanged", "the file being sent"])
def test_a_file_edited_while_an_upload_is_held_is_sent_again_and_the_manifest_says_what_s3_holds(small, capsys,
                                                                                               edited):
    """While the upload of part-00003 is held, a file is edited (one that was not to be sent, or part-00003 itself,
    replaced by a rename while the sync reads the old one): the sync sends it again, S3 ends as the folder and the
    manifest as S3; the next sync finds it all unchanged."""
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    (folder / "part-00003.csv").write_text("changed before the sync\n")
    victim = folder / ("part-00030.csv" if edited.startswith("another") else "part-00003.csv")
    result, held = held_sync(config, "part-00003.csv", lambda: replace(victim, "edited during the sync, longer\n"))
    assert held == 1
    assert f"upload: {victim} changed while it was uploaded: sending it again" in capsys.readouterr().err
    assert result[:3] == ((2, FILES - 2, 0) if edited.startswith("another") else (1, FILES - 1, 0))
    assert_mirrored(folder)
    assert_manifest_is_s3()
    assert counted_sync(config)[0] == (0, FILES, 0, 0)


def test_a_file_that_keeps_changing_fails_the_sync_in_one_line_and_leaves_no_manifest(small):
    config, folder = small
    write_channel(folder, FILES)
    counted_sync(config)
    path = folder / "part-00003.csv"
    path.write_text("changed\n")
    edits = iter(range(100))
    with pytest.raises(UserError) as raised:
        held_sync(config, "part-00003.csv", lambda: replace(path, f"edit {next(edits)}\n"), every=True)
    assert str(raised.value) == f"a file changed while it was uploaded: {path}; run the command again once nothing " \
        f"writes to {folder}"  # a processing job's input is synced so too: `make upload` would not send it
    listed = {o["Key"] for o in client("s3", EMULATOR["url"]).list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert MANIFEST not in listed and LOCK not in listed  # the next sync compares every key; no lock left
    assert counted_sync(config)[0][:3] == (1, FILES - 1, 0)
    assert_mirrored(folder)
    assert_manifest_is_s3()


def test_the_progress_counts_only_the_bytes_sent(small, capsys):
    """Ten files of 400 kB, two of them changed: the progress says 0.8 MB, not the 4.0 MB of the whole channel."""
    config, folder = small
    folder.mkdir(parents=True)
    for i in range(10):
        (folder / f"part-{i:05d}.csv").write_bytes(bytes([65 + i]) * 400_000)
    counted_sync(config)
    capsys.readouterr()
    for i in (2, 7):
        (folder / f"part-{i:05d}.csv").write_bytes(b"z" * 400_000)
    assert counted_sync(config)[0] == (2, 8, 0, 800_000)
    said = capsys.readouterr().err
    assert f"==> upload s3://{BUCKET}/{CHANNEL}: 0.8 MB done" in said.splitlines()
    assert "train: 2 uploaded (0.8 MB), 8 unchanged" in said


def test_links_inside_data_dir_are_followed_into_s3_and_the_digest(small, tmp_path):
    """A folder and a file linked into the channel from elsewhere in DATA_DIR are uploaded as if they were in it;
    a change behind the link changes the digest, and the next sync sends it."""
    config, folder = small
    write_channel(folder, 3)
    images = tmp_path / "data/.shared/images"
    images.mkdir(parents=True)
    (images / "cat.png").write_bytes(b"cat")
    (folder / "images").symlink_to(images)
    (folder / "labels.csv").symlink_to(images / "cat.png")
    assert counted_sync(config)[0][0] == 5
    assert {CHANNEL + "images/cat.png", CHANNEL + "labels.csv"} <= set(s3_channel())
    assert_mirrored(folder)
    before = data.summary(config, {"train": folder})["train"]["digest"]
    (images / "cat.png").write_bytes(b"a dog now")
    assert data.summary(config, {"train": folder})["train"]["digest"] != before
    assert counted_sync(config)[0][:3] == (2, 3, 0)
    assert_mirrored(folder)


@pytest.mark.parametrize("bad", ["a link out of DATA_DIR", "a link loop", "a name that is not UTF-8"],
                         ids=["link-out", "link-loop", "not-utf8"])
def test_a_bad_link_or_name_in_a_channel_is_one_line_everywhere(small, tmp_path, bad):
    """The sync with boto3, the unchanged check without it, the channel's digest and a local job's copy all refuse
    it in the same one line, naming it."""
    from sagemake.executors.local.channels import shared_copy

    config, folder = small
    write_channel(folder, 3)
    counted_sync(config)
    if bad == "a link out of DATA_DIR":
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (folder / "outside").symlink_to(outside)
        said = f"{folder}/outside is a link to {outside}, outside {tmp_path / 'data'}: copy what it points at " \
            f"into the channel, or move it inside {tmp_path / 'data'}"
    elif bad == "a link loop":
        (folder / "sub").mkdir()
        (folder / "sub/up").symlink_to(folder)
        said = f"{folder}/sub/up is a link that loops: point it at a file or folder that does not hold it, or " \
            "remove it"
    else:
        (folder / os.fsdecode(b"caf\xe9.csv")).write_text("latin-1\n")
        said = f"{folder}/caf\\xe9.csv: its name is not UTF-8, which S3 keys must be: rename it"
    for attempt in (lambda: counted_sync(config), lambda: unchanged.everywhere(config),
                    lambda: data.summary(config, {"train": folder}),
                    lambda: shared_copy(tmp_path / "jobs", folder, "0" * 64)):
        with pytest.raises(UserError) as raised:
            attempt()
        assert str(raised.value) == said
