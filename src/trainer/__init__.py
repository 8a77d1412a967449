"""The example training package: THE PART YOU REPLACE with your own model.

Keep its three entry points and the rest of sagemake works unchanged:
- trainer.hyperparameters.Hyperparameters: typed, validated settings
  (checked on your machine before a job starts, and again in the container);
- trainer.train.train(hp, channels, model_dir, output_dir) -> metrics dict;
- trainer.data.main(data_dir): writes one folder per channel (`make data`).

The example: gradient-boosted trees on the Wisconsin breast cancer data set,
which ships inside scikit-learn, so it runs offline.
"""
