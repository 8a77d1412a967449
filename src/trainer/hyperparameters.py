"""Hyperparameters of the example model (replace with yours).

SageMaker hands every value to the container as a string; pydantic turns
them into these types and rejects unknown names and out-of-range values.
This module imports nothing heavy: the host validates with it too.
"""

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(100, ge=1, le=5000, description="boosting rounds")
    learning_rate: float = Field(0.1, gt=0, le=1, description="shrinkage per round")
    max_depth: int = Field(3, ge=1, le=16, description="depth of each tree")
    subsample: float = Field(1.0, gt=0, le=1, description="fraction of rows per round")
    target: str = Field("target", min_length=1, description="label column in the CSV channels")
    seed: int = Field(0, ge=0, description="random seed, for reproducible models")
