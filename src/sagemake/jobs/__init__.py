"""What a job is: one module per kind, its request and its SageMaker API nouns. Imports no executor."""
