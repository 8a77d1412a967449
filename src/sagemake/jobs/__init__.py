"""What a job is: one module per kind (training, processing, tuning, transform, endpoint), each its request and
its SageMaker API nouns. Nothing here imports an executor or a target.
"""

TERMINAL = ("Completed", "Failed", "Stopped")  # every kind's statuses that end a job
