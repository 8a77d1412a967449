"""`make report` as a person meets it: the page opened in a real headless browser (Debian's chromium, tests/browser.py)
with the internet out of reach: no console error, a screenshot taken, and a known job's numbers in what shows."""

import json
import os
import subprocess

from browser import open_page
from conftest import copy_repo, tool_venv

from sagemake.config import resolve
from sagemake.pricing import DEFAULT_REGION, Prices, ledger_entry, money

PNG = b"\x89PNG\r\n\x1a\n"


def make(repo, *args):
    return subprocess.run(["make", "-s", *args], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process"})


def test_the_report_of_a_trained_project_shows_its_jobs_numbers_in_a_browser(trained_checkout, tmp_path):
    repo, job = trained_checkout
    result = make(repo, "report")
    report = repo / "build/report.html"
    try:
        assert result.returncode == 0, result.stderr
        assert "report: build/report.html (" in result.stderr and "1 job(s), 0 tuning run(s)" in result.stderr
        page = open_page(report, tmp_path / "report.png")
        html = report.read_text()
    finally:
        report.unlink(missing_ok=True)  # the shared checkout as it was
    assert page.errors == []
    assert page.screenshot.read_bytes().startswith(PNG) and page.screenshot.stat().st_size > 50_000
    record = json.loads((repo / "jobs" / job / "job.json").read_text())
    auc = {m["MetricName"]: m["Value"] for m in record["FinalMetricDataList"]}["validation:roc_auc"]
    bill = ledger_entry(record, Prices(DEFAULT_REGION, hypothetical=True))
    ledger_row = "\t".join([job, "Completed", record["CreationTime"][:19].replace("T", " "),
                            f"{record['TrainingTimeInSeconds']}s", f"{bill.billable}s", money(bill.cost), "-",
                            f"{auc:.4f}"])
    assert ledger_row in page.text
    assert f"{job} (Completed)" in page.text  # its learning curves' title, drawn by plotly.js
    assert "validation:roc_auc across jobs, by git commit" in page.text
    data = resolve(root=repo).path("DATA_DIR")
    assert "No tuning run" in page.text and str(data) not in html  # digests, never this machine's paths
    assert '<script src="http' not in html and '<link rel="stylesheet" href="http' not in html


def test_the_report_with_no_jobs_says_so(tmp_path):
    repo = copy_repo(tmp_path / "new project")
    result = make(repo, "report")
    assert result.returncode == 0, result.stderr
    assert "no jobs of sagemake-example yet (locally, in jobs/): an empty report; `make train` runs one" in \
        result.stderr
    page = open_page(repo / "build/report.html", tmp_path / "empty.png")
    assert page.errors == []
    assert "No jobs of sagemake-example yet (locally, in jobs/): make train runs one" in page.text


def test_the_report_is_remade_whole_a_reader_of_the_old_one_never_sees_it_half_written(tmp_path):
    repo = copy_repo(tmp_path / "new project")
    report = repo / "build/report.html"
    report.parent.mkdir(parents=True)
    report.write_text("the old report\n")
    with report.open() as reader:  # a browser reading the page as it is remade
        assert make(repo, "report").returncode == 0
        assert reader.read() == "the old report\n"  # replaced by another file, never written over in place
    assert "No jobs of sagemake-example yet" in report.read_text()
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]  # nothing left beside it
