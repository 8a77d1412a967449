"""The local twin of SageMaker's API: jobs of every kind on this machine, under the container contract."""
