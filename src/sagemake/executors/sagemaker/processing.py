"""Processing jobs on SageMaker: each input uploaded once per content, the job created and followed with its
CloudWatch log, the outputs downloaded. Ctrl-C stops the job.
"""

from __future__ import annotations

from pathlib import Path

from sagemake.aws.api import PROCESSING_LOG_GROUP, call, check_bucket, console_url, create, download_prefix, plain
from sagemake.cli import UserError, say
from sagemake.clock import elapsed
from sagemake.config import s3_uri
from sagemake.executors.interface import Executor
from sagemake.jobs import TERMINAL
from sagemake.jobs.processing import NAME_PART, names_pattern


class SageMakerProcessing:
    """A processing job on SageMaker: each input uploaded once per content, the job created and followed with its
    CloudWatch log, the outputs downloaded. Ctrl-C stops the job: only the command that started it collects its
    outputs, so a job left running would be paid for and thrown away."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config
        self.uploads: dict[str, Path] = {}  # S3 URI -> the local folder to put there

    def image(self) -> str:
        self.executor.ensure_image()
        return self.executor.image()

    def input_uri(self, folder: Path, name: str, digest: str) -> str:
        uri = s3_uri(self.config, "processing", "input", name, digest) + "/"
        self.uploads[uri] = folder
        return uri

    def output_uri(self, job: str, name: str) -> str:
        return s3_uri(self.config, "processing", "output", job, name) + "/"

    def run(self, request: dict) -> dict:
        """Check the bucket and image, upload the inputs, create the job, follow it to its end; its record."""
        from sagemake.aws.sync import sync_channel
        from sagemake.data import CACHE, EtagCache

        executor, name = self.executor, request["ProcessingJobName"]
        check_bucket(self.config, executor.aws)
        executor.check_image(request["AppSpecification"]["ImageUri"])
        s3 = executor.aws.client("s3")
        cache = EtagCache(self.config.root / CACHE)
        for entry in request["ProcessingInputs"]:
            uri = entry["S3Input"]["S3Uri"]
            try:  # content-named: the manifest beside the prefix makes an unchanged input a few requests
                sent, kept, _, size = sync_channel(s3, self.uploads[uri], uri, cache, uri.rstrip("/") + ".json")
            finally:
                cache.save()
            say(f"processing {name}: input {entry['InputName']}: {sent} uploaded ({size / 1e6:.1f} MB), "
                f"{kept} there already -> {uri}")
        executor.refuse_duplicate("ProcessingJob", request, "make jobs ENV={env} lists it")
        self._create(request)
        try:
            say(f"processing {name}: submitted to SageMaker in {executor.region}")
            say(f"  console: {console_url(executor.region, name, 'processing-jobs')}")
            return self.follow(name)
        except KeyboardInterrupt:
            try:
                call(executor.sagemaker.stop_processing_job, ProcessingJobName=name)
                say(f"processing {name}: stop requested (interrupted): its outputs would not be collected")
            except UserError as err:
                say(f"processing {name}: could not ask it to stop ({err}): make sure it stops in the console")
            raise

    def _create(self, request: dict) -> None:
        """CreateProcessingJob. A retry that hears the name is taken met the job its lost first attempt created:
        names end in random characters, so no other job has this one."""
        name = request["ProcessingJobName"]
        create(self.executor.sagemaker.create_processing_job, lambda: self.describe(name) is not None,
               f"processing {name}", **request)

    def names(self, limit: int | None = 10) -> list[str]:
        """This project's processing jobs, newest first (ListProcessingJobs by NameContains, then its names only)."""
        project = self.config["PROJECT_NAME"]
        answer = call(self.executor.sagemaker.list_processing_jobs, NameContains=f"{project}-{NAME_PART}-",
                      SortBy="CreationTime", SortOrder="Descending", MaxResults=100)
        summaries = sorted(answer["ProcessingJobSummaries"], key=lambda s: s["CreationTime"], reverse=True)
        ours = names_pattern(project)
        return [s["ProcessingJobName"] for s in summaries if ours.fullmatch(s["ProcessingJobName"])][:limit]

    def describe(self, name: str) -> dict | None:
        """DescribeProcessingJob's answer (None: SageMaker knows no such job)."""
        return plain(call(self.executor.sagemaker.describe_processing_job, on={"ValidationException": None},
                          ProcessingJobName=name))

    def metric_series(self, name: str) -> dict[str, list[dict]]:
        """Every `name=value` line of the job's CloudWatch log, as its series."""
        return self.executor.logged_series(name, PROCESSING_LOG_GROUP, None)

    def follow(self, name: str) -> dict:
        """Status changes with the time taken, and the log of every instance, to the end."""
        from sagemake.aws.logs import LogReader

        seen = None
        reader = LogReader(self.executor.logs, name, PROCESSING_LOG_GROUP)

        def ask():
            record = self.describe(name)
            if record is None:
                raise UserError(f"SageMaker does not know processing job {name}")
            return record, reader.new_lines()

        for (record, lines), seconds in self.executor.watch(f"processing {name}", ask, "see it in the console"):
            status = record["ProcessingJobStatus"]
            if status != seen:
                say(f"processing {name}: [{elapsed(seconds)}] {status}")
                seen = status
            for line in lines:
                print(line, flush=True)
            if status in TERMINAL:
                return record

    def download(self, request: dict, output: str, target: Path) -> None:
        """Every object under the output's S3 URI into target; a key that would land outside target is refused."""
        uri = next(o["S3Output"]["S3Uri"] for o in request["ProcessingOutputConfig"]["Outputs"]
                   if o["OutputName"] == output)
        download_prefix(self.executor.aws.client("s3"), uri, target, f"output {output}")
