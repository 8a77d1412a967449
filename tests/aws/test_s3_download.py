"""The one download of an S3 prefix (processing outputs, transform outputs), against the emulator's S3."""

import pytest
from emulator import client, make_bucket

from sagemake.aws.api import download_prefix
from sagemake.cli import JobFailed


def test_a_prefix_lands_whole_by_key_and_folder_markers_are_skipped(aws, tmp_path):
    make_bucket()
    s3 = client("s3")
    for key, body in {"out/a.csv.out": b"1\n", "out/deep/b.csv.out": b"2\n", "out/deep/": b"", "other/c": b"3"}.items():
        s3.put_object(Bucket="train-bucket", Key=key, Body=body)
    target = tmp_path / "output"
    assert download_prefix(s3, "s3://train-bucket/out", target, "transform t") == 2
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == \
        ["a.csv.out", "deep/b.csv.out"]
    assert (target / "deep/b.csv.out").read_bytes() == b"2\n"


@pytest.mark.parametrize("key", ["out/../../escaped.txt", "out/deep/../../../escaped.txt"])
def test_a_key_that_would_land_outside_its_folder_is_refused_before_anything_is_written(aws, tmp_path, key):
    make_bucket()
    s3 = client("s3")
    s3.put_object(Bucket="train-bucket", Key="out/a.csv.out", Body=b"1\n")
    s3.put_object(Bucket="train-bucket", Key=key, Body=b"evil")
    target = tmp_path / "jobs" / "output"
    with pytest.raises(JobFailed, match=rf"transform t: the object s3://train-bucket/{key} would land outside"):
        download_prefix(s3, "s3://train-bucket/out/", target, "transform t")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
