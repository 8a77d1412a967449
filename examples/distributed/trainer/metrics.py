"""The metrics train() returns, the first one the main one (every host prints the same values)."""

METRICS = ("validation:auc", "validation:logloss", "validation:accuracy")
