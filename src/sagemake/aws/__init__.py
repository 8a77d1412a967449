"""AWS: api (the session, every call and its errors in one line), s3, ecr, logs, the sync and its unchanged check.

Nothing here imports boto3 on import: the unchanged check (s3read.py) runs without it.
"""
