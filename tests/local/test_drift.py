"""Capture and drift on this machine, with a real trained model (the fixture trainer's, not the example's): what
`make predict` and `make serve` capture is SageMaker's data capture format field by field, with the very bytes sent
and answered; `make drift` flags a data set with shifted features and not the same data unshifted (exit 4 and 0),
writes Evidently's report beside the model, and shows in `make report`; each bad input is one line and exit 2;
and no other command imports the drift code or Evidently.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tool_venv
from test_capture import assert_documented
from test_serve import Reference, free_port, make, model_copy, no_engine, started_serve

pytestmark = pytest.mark.slow  # `make drift` runs in its own virtualenv, made once (a minute or two)


@pytest.fixture(scope="module")
def project(trained_checkout):
    return trained_checkout


@pytest.fixture(scope="module")
def reference(project) -> Reference:
    return Reference(*project)


@contextlib.contextmanager
def own_model(project):
    """A copy of the trained model of its own (baseline included), none of its captures or drift reports."""
    repo, job = project
    with model_copy(repo, job) as name:
        for kept in ("capture", "drift"):
            shutil.rmtree(repo / "models" / name / kept, ignore_errors=True)
        yield name


def captured(repo: Path, name: str) -> list[dict]:
    return [json.loads(line) for path in sorted((repo / "models" / name / "capture").rglob("*.jsonl"))
            for line in path.read_text().splitlines()]


def test_make_predict_captures_the_request_and_its_answer_in_sagemakers_format(project, reference, tmp_path):
    repo, _ = project
    body = reference.csv(reference.cells[:5])
    (tmp_path / "rows.csv").write_bytes(body)
    (tmp_path / "rows.json").write_text(json.dumps({"instances": [[float(v) for v in reference.cells[0]]]}))
    with own_model(project) as name:
        done = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", f"JOB={name}", env=no_engine(tmp_path))
        assert done.returncode == 0, done.stderr
        (record,) = captured(repo, name)
        assert_documented(record)
        sent, answered = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
        assert (sent["observedContentType"], sent["encoding"], sent["data"]) == ("text/csv", "CSV", body.decode())
        assert answered["encoding"] == "CSV" and answered["data"] == done.stdout
        assert answered["observedContentType"].startswith("text/csv")
        (path,) = (repo / "models" / name / "capture").rglob("*.jsonl")
        hour = record["eventMetadata"]["inferenceTime"][:13].replace("-", "/").replace("T", "/")
        assert path.parent.relative_to(repo / "models" / name / "capture").as_posix() == hour
        done = make(repo, "predict", f"FILE={tmp_path / 'rows.json'}", f"JOB={name}", env=no_engine(tmp_path))
        assert done.returncode == 0, done.stderr
        second = captured(repo, name)[-1]
        assert_documented(second)
        assert second["captureData"]["endpointInput"]["encoding"] == "JSON"
        assert json.loads(second["captureData"]["endpointInput"]["data"]) == \
            json.loads((tmp_path / "rows.json").read_text())
        done = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", f"JOB={name}",
                    env={**no_engine(tmp_path), "CAPTURE_PERCENT": "0"})
        assert done.returncode == 0 and len(captured(repo, name)) == 2  # off: nothing more


def test_make_serve_captures_what_reaches_it_through_its_port(project, reference, tmp_path):
    repo, _ = project
    body = reference.csv(reference.cells[:3])
    with own_model(project) as name:
        port = free_port()
        serving, said = started_serve(repo, port, no_engine(tmp_path), f"JOB={name}")
        try:
            assert b"serve: 100% of the requests captured in " in said, said.decode()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            answers = []
            for _ in range(3):  # one kept-alive connection, as a client sends them
                connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                answer = connection.getresponse()
                answers.append((answer.status, answer.read()))
            connection.request("GET", "/ping")
            ping = connection.getresponse()
            assert (ping.status, ping.read()) == (200, b"")
            connection.close()
        finally:
            os.killpg(serving.pid, signal.SIGINT)
            serving.wait(timeout=120)
        assert [status for status, _ in answers] == [200] * 3
        records = captured(repo, name)  # written by the time `make serve` ended
        assert len(records) == 3
        for record, (_, answer) in zip(records, answers, strict=True):
            assert_documented(record)
            assert record["captureData"]["endpointInput"]["data"] == body.decode()
            assert record["captureData"]["endpointOutput"]["data"] == answer.decode()
        assert len({r["eventMetadata"]["eventId"] for r in records}) == 3


def shifted_csv(reference: Reference, features: int, factor: float) -> bytes:
    rows = [[float(v) * factor if i < features else float(v) for i, v in enumerate(cells)]
            for cells in reference.cells]
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows).encode()


def test_make_drift_flags_shifted_features_and_not_the_same_data_unshifted(project, reference, tmp_path,
                                                                          drift_python):
    repo, job = project
    (tmp_path / "same.csv").write_bytes(reference.csv())
    (tmp_path / "shifted.csv").write_bytes(shifted_csv(reference, 6, 3.0))
    env = {"DRIFT_THRESHOLD": "15"}
    with own_model(project) as name:
        same = make(repo, "drift", f"FILE={tmp_path / 'same.csv'}", f"JOB={name}", env=env)
        assert same.returncode == 0, same.stdout + same.stderr
        summary = same.stdout.splitlines()[-1]
        assert "feature(s) drifted" in summary and "DRIFT_THRESHOLD=15%): no drift; report " in summary
        shifted = make(repo, "drift", f"FILE={tmp_path / 'shifted.csv'}", f"JOB={name}", env=env)
        assert shifted.returncode == 2 and "[Makefile" in shifted.stderr and "drift] Error 4" in shifted.stderr
        direct = subprocess.run([str(drift_python), "-m", "sagemake", "drift", str(tmp_path / "shifted.csv"), "",
                                 name], cwd=repo, env={**os.environ, **env}, capture_output=True, text=True,
                                timeout=600)
        assert direct.returncode == 4, direct.stdout + direct.stderr  # make says 2 for any failed recipe
        assert shifted.stdout.splitlines()[:-1] == direct.stdout.splitlines()[:-1]
        lines = direct.stdout.splitlines()
        flagged = {line.split(": ")[1] for line in lines[:-1]}
        assert set(reference.features[:6]) <= flagged, lines
        assert all(" (threshold " in line for line in lines[:-1])
        assert lines[-1].startswith(f"drift: {len(flagged)} of 30 feature(s) drifted (") and ": DRIFT; report " in \
            lines[-1]
        report = Path(lines[-1].rsplit("report ", 1)[1])
        assert report.parent == repo / "models" / name / "drift" and report.stat().st_size > 100_000
        latest = json.loads((report.parent / "latest.json").read_text())
        assert latest["drifted"] is True and latest["report"] == report.name and latest["rows"] == len(reference.cells)
        # `make report` shows a job's latest drift and links Evidently's page: the job's own model given this one's
        job_drift = repo / "models" / job / "drift"
        shutil.copytree(report.parent, job_drift)
        try:
            done = make(repo, "report")
        finally:
            shutil.rmtree(job_drift)
        assert done.returncode == 0, done.stderr
        page = (repo / "build/report.html").read_text()
        drift_table = page[page.index("<table id=drift>"):]
        drift_table = drift_table[:drift_table.index("</table>")]
        assert f"<td>{job}</td>" in drift_table and "<td>DRIFT</td>" in drift_table
        assert f'<a href="{(job_drift / report.name).as_uri()}">{report.name}</a>' in drift_table


def test_make_drift_compares_the_captured_requests(project, reference, tmp_path, drift_python):
    repo, _ = project
    (tmp_path / "shifted.csv").write_bytes(shifted_csv(reference, 30, 5.0))
    with own_model(project) as name:
        done = make(repo, "predict", f"FILE={tmp_path / 'shifted.csv'}", f"JOB={name}", env=no_engine(tmp_path))
        assert done.returncode == 0, done.stderr
        drifted = make(repo, "drift", f"JOB={name}", "SINCE=1h")
        assert drifted.returncode == 2 and "drift] Error 4" in drifted.stderr, drifted.stdout + drifted.stderr
        assert f"drift: {len(reference.cells)} row(s) from {repo / 'models' / name / 'capture'}/" in drifted.stderr


def test_make_drift_bad_input_is_one_line_naming_the_fix(project, reference, tmp_path, drift_python):
    repo, _ = project
    header = ",".join(["colour", *reference.features[1:]])
    (tmp_path / "renamed.csv").write_text(header + "\n" + reference.csv(reference.cells[:3]).decode())
    (tmp_path / "narrow.csv").write_text("1,2,3\n")
    with own_model(project) as name:
        folder = repo / "models" / name
        for args, sentence in (
            ((), f"sagemake: no requests captured in {folder / 'capture'}/ yet: `make serve JOB={name}` (then send "
                 f"it requests), `make predict FILE=rows.csv JOB={name}` or `make transform` capture them"),
            ((f"FILE={tmp_path / 'renamed.csv'}",), f"sagemake: FILE={tmp_path / 'renamed.csv'}: its columns differ "
             f"from the training features: missing {reference.features[0]}; not trained on colour: send the "
             "training features, by those names"),
            ((f"FILE={tmp_path / 'narrow.csv'}",), f"sagemake: FILE={tmp_path / 'narrow.csv'}: its rows do not match "
             "the training features: line 1 has 3 values; the model takes 30 ("),
            (("SINCE=soon",), "sagemake: SINCE=soon is not a span: give minutes, hours or days, as 30m, 12h or 1d"),
        ):
            done = make(repo, "drift", f"JOB={name}", *args)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            (said,) = [line for line in done.stderr.splitlines() if line.startswith("sagemake:")]
            assert said.startswith(sentence), (args, said)
        (folder / "baseline.json").unlink()  # as a model fetched before baselines were kept
        done = make(repo, "drift", f"JOB={name}", f"FILE={tmp_path / 'narrow.csv'}")
        assert done.returncode == 2
        assert f"sagemake: the model of {name} has no baseline (fetched before sagemake kept one, or its channel " \
               f"could not be profiled): `make baseline JOB={name}` computes it from the job's channels" in done.stderr
        done = make(repo, "baseline", f"JOB={name}")  # the offered command: from the job's own channel
        assert done.returncode == 0, done.stderr
        assert f"baseline: 455 rows of channel train (CSV) profiled: 30 features in {folder / 'baseline.json'}" \
            in done.stderr
        assert json.loads((folder / "baseline.json").read_text())["features"] == reference.features


def test_other_commands_never_import_the_drift_code_or_evidently(project, reference, tmp_path):
    """`make predict` (with its capture), `make jobs` and `make fetch`'s baseline: none imports sagemake.drift,
    Evidently or pandas (the report's test asserts the same of plotly)."""
    repo, job = project
    (tmp_path / "rows.csv").write_bytes(reference.csv(reference.cells[:2]))
    env = {**os.environ, "VENV": tool_venv(), **no_engine(tmp_path)}
    for args in (("predict", str(tmp_path / "rows.csv"), job), ("jobs",), ("baseline", job)):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sagemake", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import")}
        assert "sagemake.capture" in imported or args[0] != "predict"
        assert not {"sagemake.drift", "evidently", "pandas"} & imported, args


def test_make_transform_captures_each_input_file_and_its_out_file(project, reference, tmp_path):
    repo, _ = project
    inputs = tmp_path / "in"
    (inputs / "more").mkdir(parents=True)
    (inputs / "a.csv").write_bytes(reference.csv(reference.cells[:4]))
    (inputs / "more" / "b.csv").write_bytes(reference.csv(reference.cells[4:6]))
    with own_model(project) as name:
        done = make(repo, "transform", f"INPUT={inputs}", f"JOB={name}", env=no_engine(tmp_path))
        assert done.returncode == 0, done.stderr
        assert f"transform: 2 of 2 input file(s) captured for `make drift` (models/{name}/capture/)" in done.stderr
        records = captured(repo, name)
        (output,) = [line.rsplit(" in ", 1)[1] for line in done.stderr.splitlines() if ".out file(s) in " in line]
        for record, relative in zip(records, ("a.csv", "more/b.csv"), strict=True):
            assert_documented(record)
            assert record["captureData"]["endpointInput"]["data"] == (inputs / relative).read_text()
            assert record["captureData"]["endpointOutput"]["data"] == (Path(output) / f"{relative}.out").read_text()


def test_a_fetch_again_keeps_the_capture_and_the_drift_reports_and_profiles_the_data_again(project):
    repo, job = project
    folder = repo / "models" / job
    (folder / "capture" / "2026/12/08/10").mkdir(parents=True, exist_ok=True)
    (folder / "capture" / "2026/12/08/10" / "serve-1-x.jsonl").write_text("kept\n")
    (folder / "drift").mkdir(exist_ok=True)
    (folder / "drift" / "latest.json").write_text("{}\n")
    (folder / "baseline.json").unlink()
    try:
        done = make(repo, "fetch", f"JOB={job}")
        assert done.returncode == 0, done.stderr
        assert (folder / "capture" / "2026/12/08/10" / "serve-1-x.jsonl").read_text() == "kept\n"
        assert (folder / "drift" / "latest.json").read_text() == "{}\n"
        assert f"baseline: 455 rows of channel train (CSV) profiled: 30 features in {folder / 'baseline.json'}" \
            in done.stderr and (folder / "baseline.json").is_file()
    finally:
        shutil.rmtree(folder / "capture", ignore_errors=True)
        shutil.rmtree(folder / "drift", ignore_errors=True)
