"""The metrics train() returns, the first one the main one (every host prints the same values); :max or :min
says which way is better."""

METRICS = ("validation:auc:max", "validation:logloss:min", "validation:accuracy:max")
