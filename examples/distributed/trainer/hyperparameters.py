"""Hyperparameters of the distributed example. Imports only pydantic: the host validates with it too."""

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_round: int = Field(60, ge=1, le=5000, description="boosting rounds")
    eta: float = Field(0.2, gt=0, le=1, description="shrinkage per round")
    max_depth: int = Field(4, ge=1, le=16, description="depth of each tree")
    tracker_port: int = Field(0, ge=0, le=65535, description="the tracker's port on the first host; 0: one from "
                              "the job's name, so jobs side by side on one machine never share it")
    target: str = Field("target", min_length=1, description="label column in the CSV channels")
    seed: int = Field(0, ge=0, description="random seed, for reproducible models")
