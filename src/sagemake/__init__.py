"""sagemake: the glue between this repository and SageMaker training jobs."""
