"""Hyperparameters of the regression example.

SageMaker hands every value over as a string; the host sends lists and None as
JSON text ('["bmi", "bp"]', 'null'), so those fields are JSON-decoded before
pydantic checks them. Imports only pydantic and the standard library: the host
validates with this module before a job starts.
"""

import json
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, gt=0, description="strength of the penalty")
    l1_ratio: float = Field(0.5, ge=0, le=1, description="0 is ridge, 1 is lasso")
    max_iter: int = Field(1000, ge=1, description="coordinate descent iterations")
    feature_subset: Optional[list[str]] = Field(None, min_length=1, description="feature names to use; None: all")
    clip_target: Optional[float] = Field(None, description="cap on the training target, against outliers; None: no cap")
    seed: int = Field(0, ge=0, description="random seed, for reproducible models")

    @field_validator("feature_subset", "clip_target", mode="before")
    @classmethod
    def _json_text(cls, value):
        """'["bmi", "bp"]' -> ["bmi", "bp"], 'null' -> None, '300' -> 300.0."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('expected JSON text, e.g. ["bmi", "bp"], 250 or null') from None
