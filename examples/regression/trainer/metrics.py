"""The metrics train() returns, the first one the main one.

Each becomes a SageMaker metric definition matching the `name=value` line the
container prints; this module stays light so the host can import it.
"""

METRICS = ("validation:rmse", "validation:mae", "validation:r2", "train:rmse")
