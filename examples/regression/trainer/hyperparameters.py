"""Hyperparameters of the regression example: a list and two optional values among them.

SageMaker hands every value over as a string; sagemake's contract turns a list
back from JSON text (or from comma-separated words: HP='feature_subset=bmi,bp')
before pydantic checks it, and leaves an unset optional value out. Imports only
pydantic and the standard library: the host validates with this module too.
"""

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, gt=0, description="strength of the penalty")
    l1_ratio: float = Field(0.5, ge=0, le=1, description="0 is ridge, 1 is lasso")
    max_iter: int = Field(1000, ge=1, description="coordinate descent iterations")
    feature_subset: Optional[list[str]] = Field(None, min_length=1, description="feature names to use; None: all")
    clip_target: Optional[float] = Field(None, description="cap on the training target, against outliers; None: no cap")
    seed: int = Field(0, ge=0, description="random seed, for reproducible models")
