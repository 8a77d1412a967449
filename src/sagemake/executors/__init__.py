"""Where a job runs, chosen once: `for_config(config)` is the only place that looks at ENV (local: the
LocalExecutor, this machine under SageMaker's container contract; any other ENV: the SageMakerExecutor, boto3).
Everything else holds an Executor (interface.py) and never asks which."""

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
