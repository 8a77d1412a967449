"""The example training package: THE PART YOU REPLACE with your own model.

Keep its entry points and the rest of sagemake works unchanged:
- trainer.hyperparameters.Hyperparameters: typed, validated settings
  (checked on your machine before a job starts, and again in the container);
- trainer.metrics.METRICS: the metrics train() returns, the main one first,
  each with the way it gets better (name:max or name:min);
- trainer.train.train(hp, channels, model_dir, output_dir) -> metrics dict
  (with a `checkpoint_dir` parameter it also gets /opt/ml/checkpoints);
- trainer.data.main(data_dir): writes one folder per channel (`make data`);
- trainer.predict: load(model_dir) and predict(model, rows), for `make serve`.

The example: gradient-boosted trees on the Wisconsin breast cancer data set,
which ships inside scikit-learn, so it runs offline.
"""
