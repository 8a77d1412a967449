"""The metrics train() returns (replace with yours).

Each becomes a SageMaker metric definition matching the `name=value` line
the container prints; the first is the main one (`make jobs` shows it). This
module stays light so the host can import it.
"""

METRICS = (
    "validation:roc_auc",
    "validation:accuracy",
    "validation:f1",
    "validation:pr_auc",
    "train:accuracy",
)
