"""Data capture records as SageMaker writes them, the spans SINCE names, the endpoint's DataCaptureConfig, and the
baseline of a training channel, profiled from the regression example's own data (a project that is not the example).
"""

import base64
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import CHECKOUT

from sagemake import baseline, capture
from sagemake.cli import UserError
from sagemake.config import resolve

# The record's shape in AWS's documentation of data capture ("View collected data"): every key, nothing more.
DOCUMENTED = {"captureData": {"endpointInput": {"observedContentType", "mode", "data", "encoding"},
                              "endpointOutput": {"observedContentType", "mode", "data", "encoding"}},
              "eventMetadata": {"eventId", "inferenceTime"}, "eventVersion": None}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_documented(record: dict) -> None:
    """The record has the documented keys and value kinds, field by field."""
    assert set(record) == set(DOCUMENTED)
    assert set(record["captureData"]) == set(DOCUMENTED["captureData"])
    for side, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
        part = record["captureData"][side]
        assert set(part) == DOCUMENTED["captureData"][side]
        assert part["mode"] == mode and part["encoding"] in ("CSV", "JSON", "BASE64")
        assert isinstance(part["data"], str) and isinstance(part["observedContentType"], str)
    assert set(record["eventMetadata"]) == DOCUMENTED["eventMetadata"]
    assert UUID.match(record["eventMetadata"]["eventId"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", record["eventMetadata"]["inferenceTime"])
    assert record["eventVersion"] == "0"


def test_a_record_is_sagemakers_csv_and_json_as_text_anything_else_base64():
    when = datetime(2026, 12, 8, 13, 36, 30, 500000, tzinfo=timezone.utc)
    record = capture.event(b"1.5,2\n3,4\n", "text/csv", b"0\n1\n", "text/csv; charset=utf-8", when)
    assert_documented(record)
    assert record["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                      "data": "1.5,2\n3,4\n", "encoding": "CSV"}
    assert record["captureData"]["endpointOutput"]["encoding"] == "CSV"
    assert record["eventMetadata"]["inferenceTime"] == "2026-12-08T13:36:30Z"
    other = capture.event(b'{"instances": [[1, 2]]}', "application/json", b"\x00\xff", "application/x-npy", when)
    assert other["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert other["captureData"]["endpointOutput"]["data"] == base64.b64encode(b"\x00\xff").decode()
    assert capture.decode(other["captureData"]["endpointOutput"]) == b"\x00\xff"
    assert capture.decode(record["captureData"]["endpointInput"]) == b"1.5,2\n3,4\n"
    assert record["eventMetadata"]["eventId"] != other["eventMetadata"]["eventId"]


def test_the_capture_writes_the_sampled_requests_in_hourly_folders(tmp_path):
    with capture.Capture(tmp_path, 100, "serve") as everything:
        for number in range(5):
            everything.add(f"{number}\n".encode(), "text/csv", b"1\n", "text/csv")
    (path,) = tmp_path.rglob("*.jsonl")
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\d\d/serve-\d+-\d+T\d+\.jsonl", str(path.relative_to(tmp_path)))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["captureData"]["endpointInput"]["data"] for r in records] == [f"{n}\n" for n in range(5)]
    with capture.Capture(tmp_path / "none", 1, "serve") as few:
        for _ in range(2000):
            few.add(b"1\n", "text/csv", b"1\n", "text/csv")
    assert 0 < few.count < 200  # about 1 in 100 sampled


def test_since_names_a_span_and_files_are_kept_by_their_hour():
    now = datetime(2026, 12, 8, 10, 30, tzinfo=timezone.utc)
    assert capture.since("", now) is None
    assert capture.since("90m", now) == datetime(2026, 12, 8, 9, 0, tzinfo=timezone.utc)
    assert capture.since("1d", now) == datetime(2026, 12, 7, 10, 30, tzinfo=timezone.utc)
    with pytest.raises(UserError, match="SINCE=yesterday is not a span: give minutes, hours or days"):
        capture.since("yesterday", now)
    start = capture.since("2h", now)
    key = "ep/AllTraffic/2026/12/08/{}/a.jsonl"
    assert not capture.in_span(key.format("07"), start) and capture.in_span(key.format("08"), start)
    assert capture.in_span(key.format("07"), None) and not capture.in_span("ep/notes.txt", None)


def test_a_line_that_is_no_capture_record_names_its_file():
    with pytest.raises(UserError, match=r"^x.jsonl, line 2, is not a data capture record: move that file out"):
        list(capture.events("x.jsonl", json.dumps(capture.event(b"1", "text/csv", b"1", "text/csv",
                                                                datetime.now(timezone.utc))) + "\n{}\n", None))


def test_the_endpoint_config_captures_both_ways_to_the_projects_prefix_or_not_at_all(tmp_path):
    config = resolve(root=CHECKOUT, environ={"S3_BUCKET": "b", "S3_PREFIX": "team/p", "CAPTURE_PERCENT": "20"})
    assert capture.data_capture(config) == {
        "EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": "s3://b/team/p/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                     "JsonContentTypes": ["application/json", "application/jsonlines"]}}
    assert capture.data_capture(resolve(root=CHECKOUT, environ={"CAPTURE_PERCENT": "0"})) is None


@pytest.fixture(scope="module")
def regression_data(tmp_path_factory) -> Path:
    """examples/regression's own data step: the diabetes data set, its label `target`."""
    from importlib import util

    spec = util.spec_from_file_location("regression_data", CHECKOUT / "examples/regression/trainer/data.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("regression")
    module.main(folder)
    return folder


def test_a_csv_channel_is_profiled_per_feature_without_its_label(regression_data):
    kind, files = baseline.channel_files(regression_data / "train")
    found = baseline.profile(baseline.records(kind, files), "target")
    assert kind == "CSV" and found["label"] == "target"
    assert found["features"] == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    lines = (regression_data / "train/train.csv").read_text().splitlines()[1:]
    ages = [float(line.split(",")[0]) for line in lines]
    age = found["profile"]["age"]
    assert (age["kind"], age["count"], age["missing"]) == ("numeric", len(lines), 0)
    assert age["mean"] == pytest.approx(sum(ages) / len(ages)) and (age["min"], age["max"]) == (min(ages), max(ages))
    assert found["rows"] == len(lines) and sorted(found["sample"]["age"]) == sorted(ages)  # all fit in the sample


def test_the_models_own_feature_list_decides_whatever_its_label_is_called(regression_data, tmp_path):
    """A label named otherwise than target (price) is no feature when the model's features.json names its features;
    a channel that lacks one of them is said."""
    features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "train.csv").write_text((regression_data / "train/train.csv").read_text().replace("target", "price", 1))
    model = tmp_path / "model"
    model.mkdir()
    (model / "features.json").write_text(json.dumps(features))  # as examples/regression's trainer writes it
    taken = baseline.model_features(model)
    found = baseline.profile(baseline.records(*baseline.channel_files(channel)), "target", taken)
    assert found["features"] == features and found["label"] == "price"
    (model / "features.json").write_text(json.dumps({"features": [*features, "s7"], "target": "price"}))
    with pytest.raises(baseline.NoBaseline, match="the channel lacks the model's features s7"):
        baseline.profile(baseline.records(*baseline.channel_files(channel)), "target", baseline.model_features(model))


def test_a_local_channel_changed_since_its_job_is_refused(regression_data, tmp_path):
    """The baseline is of the data the job read: a local job's folder rewritten since is refused, as a SageMaker
    job's DATA_DIR copy is."""
    from sagemake.data import summary

    channel = tmp_path / "data/train"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_text((regression_data / "train/train.csv").read_text())
    config = resolve(root=CHECKOUT, environ={"DATA_DIR": str(tmp_path / "data")})
    digest = summary(config, {"train": channel})["train"]["digest"]
    manifest = {"job_name": "j", "data": {"train": {"uri": channel.as_uri(), "digest": digest}}}
    assert baseline.training_channel(config, manifest) == ("train", channel)
    (channel / "train.csv").write_text((regression_data / "train/train.csv").read_text() + "1,1,1,1,1,1,1,1,1,1,1\n")
    with pytest.raises(baseline.NoBaseline, match=rf"^{channel} is no longer the data job j read from "):
        baseline.training_channel(config, manifest)


def test_json_lines_are_profiled_and_other_files_are_said_and_skipped(regression_data, tmp_path):
    kind, files = baseline.channel_files(regression_data / "train")
    rows = list(baseline.records(kind, files))
    channel = tmp_path / "json"
    channel.mkdir()
    (channel / "part.jsonl").write_text("".join(json.dumps({**row, "city": "Oslo" if i % 3 else "Bergen"}) + "\n"
                                                for i, row in enumerate(rows)))
    kind, files = baseline.channel_files(channel)
    found = baseline.profile(baseline.records(kind, files), "target")
    assert kind == "JSON lines" and found["features"][-1] == "city"
    assert found["profile"]["city"]["kind"] == "categorical" and set(found["profile"]["city"]["top"]) == \
        {"Oslo", "Bergen"}
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(baseline.NoBaseline, match=r"the channel's files are \.png: only CSV \(with a header\), "
                                                  "JSON lines and Parquet are profiled"):
        baseline.channel_files(images)
    headless = tmp_path / "headless"
    headless.mkdir()
    (headless / "a.csv").write_text("1,2\n3,4\n")
    with pytest.raises(baseline.NoBaseline, match="a.csv has no header line naming its columns: add one"):
        baseline.profile(baseline.records(*baseline.channel_files(headless)), "target")


def test_the_sample_is_bounded_and_the_same_for_the_same_data(monkeypatch):
    monkeypatch.setattr(baseline, "SAMPLE_ROWS", 50)
    rows = [{"x": str(i), "target": "0"} for i in range(1000)]
    first, second = baseline.profile(iter(rows), "target"), baseline.profile(iter(rows), "target")
    assert len(first["sample"]["x"]) == 50 and first["sample"] == second["sample"]
    assert max(first["sample"]["x"]) > 500  # drawn from all the rows, not the first 50


def test_the_proxy_passes_a_chunked_body_on_whole_and_captures_it(tmp_path):
    """A client that sends its body in chunks (curl -H 'Transfer-Encoding: chunked') is served as without capture:
    the model server gets the body whole, with its length, and the capture has it."""
    import http.client
    import http.server
    import socket
    import threading

    from sagemake.executors.local.serving import CapturingProxy

    seen = []

    class Model(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            seen.append((self.headers.get("Content-Length"), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"1\n")

    model = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    proxy = CapturingProxy(0, f"http://127.0.0.1:{model.server_address[1]}", capture.Capture(tmp_path, 100, "t"))
    try:
        client = http.client.HTTPConnection("127.0.0.1", proxy.server_address[1], timeout=30)
        client.request("POST", "/invocations", iter([b"1.5,2", b".5\n", b"3,4\n"]), {"Content-Type": "text/csv"},
                       encode_chunked=True)
        answer = client.getresponse()
        assert (answer.status, answer.read()) == (200, b"1\n")
        client.close()
        with socket.create_connection(("127.0.0.1", proxy.server_address[1]), timeout=30) as raw:
            raw.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            assert raw.recv(1024).startswith(b"HTTP/1.1 400 ")  # a chunk size that is not hexadecimal
    finally:
        proxy.close()
        model.shutdown()
    assert seen == [("12", b"1.5,2.5\n3,4\n")]
    (record,) = [json.loads(line) for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert record["captureData"]["endpointInput"]["data"] == "1.5,2.5\n3,4\n"
