"""The container side of SageMaker's contract: the /opt/ml layout, train and serve.

Standard library only (pydantic where hyperparameters are parsed): this folder is copied into the image whole.
"""
