"""The metrics train() returns (replace with yours).

Each becomes a SageMaker metric definition matching the `name=value` line
the container prints; the first is the main one (`make jobs` shows it, and
`make tune` optimises it). `:max` or `:min` says which way is better: tuning
needs it for its objective, and never guesses it from the name. This module
stays light so the host can import it.
"""

METRICS = (
    "validation:roc_auc:max",
    "validation:accuracy:max",
    "validation:f1:max",
    "validation:pr_auc:max",
    "train:accuracy:max",
)
