"""Summary: data (if missing), build, upload, submit and follow the job, then fetch its model into MODELS_DIR

Usage: make train [ENV=local|prod|<name>] [HP='key=value ...']   (python -m sagemake train)

The whole pipeline in one process: the trainer's data step only when DATA_DIR
holds nothing yet, the image (built and pushed unless its content tag is there), the
channels synced (AWS), the CreateTrainingJob request (what `make plan` prints)
run where ENV says and followed to its end, then the model fetched with its
manifest, and the job written as an MLflow run (MLFLOW_TRACKING_URI; TRACKING=false
turns it off). Everything is checked before a job starts: config, hyperparameters,
data channels and, on AWS, credentials, the bucket's region, the image and the data.
Exit status: 0 done, 1 the job failed or stopped, 2 bad input, 3 an AWS error, 130 interrupted.
"""

from __future__ import annotations

from sagemake.cli import Exit, JobFailed, UserError
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.job_python import ensure_channels
from sagemake.jobs import reason_line
from sagemake.jobs.training import data_tags, plan
from sagemake.models import fetch
from sagemake.tracking import Tracker


def train(config: Config, executor: Executor) -> int:
    """The whole pipeline in one process: each step with nothing to do costs next to nothing, and the request
    is built (every check made) before anything is built, pushed or uploaded. The job's run is queued as it ends,
    written by a writer in the background (tracking)."""
    tracker = Tracker(config)
    folders = ensure_channels(config)  # the data step, when DATA_DIR holds nothing yet: the request names them
    request = plan(config, executor)
    executor.ensure_image()
    executor.sync_data()
    request["Tags"] += data_tags(config, folders)
    name = request["TrainingJobName"]
    try:
        record = executor.run(request)
    except KeyboardInterrupt:
        tracker.ended(lambda: executor.describe(name), "TrainingJobStatus",
                      lambda ended: tracker.training(executor, ended))
        return Exit.INTERRUPTED
    status = record["TrainingJobStatus"]
    if status != "Completed":
        tracker.training(executor, record)
        reason = reason_line(record.get("FailureReason") or record["SecondaryStatus"])
        raise JobFailed(f"job {name} {status}: {reason} (log: `make logs{executor.env_flag()} JOB={name}`)")
    tracker.training(executor, record, fetch(config, executor, name))
    return Exit.OK


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make train (settings come from .env, .env.<ENV> and the command line)")
    config = resolve()
    return train(config, for_config(config))

