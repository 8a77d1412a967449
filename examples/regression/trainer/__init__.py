"""A regression trainer package: a drop-in replacement for sagemake's src/trainer/.

Replace src/trainer/ with this folder and nothing else changes: it keeps the
same entry points (trainer.hyperparameters.Hyperparameters, trainer.metrics.METRICS,
trainer.train.train and trainer.data.main). The model: scikit-learn's ElasticNet
on the diabetes data set, which ships inside scikit-learn, so it runs offline.
"""
