"""Where a job runs: one interface for every kind of job, two executors, chosen once.

`for_config(config)` is the only place that looks at ENV: ENV=local gives the
LocalExecutor (this machine, under SageMaker's container contract), any other
ENV the SageMakerExecutor (boto3). Everything else (the request builders in
jobs/, the targets) holds an Executor and never asks which.

Both answer in SageMaker's own shapes: a job is a Create* request in and a
Describe* record out, with times as ISO 8601 strings. Training is the
executor's own; each other kind is reached through it (processing(), tuning(),
transforms(), endpoints()), as the SageMaker SDK's local mode keeps one small
class per kind behind one client.
"""

from __future__ import annotations

from sagemake.config import DEFAULT_ENV, Config
from sagemake.executors.interface import Executor

__all__ = ["Executor", "for_config"]


def for_config(config: Config) -> Executor:
    """The executor of ENV: this is the one place that chooses."""
    if config.env == DEFAULT_ENV:
        from sagemake.executors.local.executor import LocalExecutor

        return LocalExecutor(config)
    from sagemake.executors.sagemaker.executor import SageMakerExecutor

    return SageMakerExecutor(config)
