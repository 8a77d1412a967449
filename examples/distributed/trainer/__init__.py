"""A distributed trainer package: a drop-in replacement for sagemake's src/trainer/.

The same entry points (trainer.hyperparameters.Hyperparameters,
trainer.metrics.METRICS, trainer.train.train and trainer.data.main); the
model is XGBoost trained by every host of the job together (see ../README.md).
"""
