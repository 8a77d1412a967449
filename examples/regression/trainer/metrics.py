"""The metrics train() returns, the first one the main one.

Each becomes a SageMaker metric definition matching the `name=value` line the
container prints; `:min` or `:max` says which way is better (tuning needs it
for its objective). This module stays light so the host can import it.
"""

METRICS = ("validation:rmse:min", "validation:mae:min", "validation:r2:max", "train:rmse:min")
