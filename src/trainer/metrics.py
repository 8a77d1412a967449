"""The metrics train() returns (replace with yours).

Each becomes a SageMaker metric definition matching the `name=value` line
the container prints; this module stays light so the host can import it.
"""

METRICS = (
    "train:accuracy",
    "validation:accuracy",
    "validation:f1",
    "validation:roc_auc",
    "validation:pr_auc",
)
