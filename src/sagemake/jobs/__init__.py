"""What a job is: one module per kind (training, processing, tuning, transform, endpoint), each its request and
its SageMaker API nouns. Nothing here imports an executor or a target.
"""

import hashlib
import json
import time
from datetime import datetime

TERMINAL = ("Completed", "Failed", "Stopped")  # every kind's statuses that end a job
DIGEST_TAG = "sagemake:request-digest"  # on every job sagemake submits: what makes two of them the same job


def request_digest(request: dict, name: str) -> str:
    """What makes two Create* requests the same job: all of the request but its name (wherever the name stands: in
    output and checkpoint places too) and its tags, with the data tags kept (other data makes another job)."""
    tags = sorted((t["Key"], t["Value"]) for t in request.get("Tags", []) if t["Key"].startswith("sagemake:data:"))
    rest = {key: value for key, value in request.items() if key != "Tags"}
    text = json.dumps([rest, tags], sort_keys=True).replace(name, "<name>")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ran(record: dict, noun: str) -> int:
    """Seconds a Describe<noun>Job record (Processing, Transform) ran: from <noun>StartTime (CreationTime when it
    never started) to <noun>EndTime, to now while it runs, or to its last change when it ended without an end time."""
    start = record.get(f"{noun}StartTime") or record["CreationTime"]
    if record.get(f"{noun}EndTime"):
        end = datetime.fromisoformat(record[f"{noun}EndTime"]).timestamp()
    elif record[f"{noun}JobStatus"] in TERMINAL:
        end = datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
    else:
        end = time.time()
    return max(0, round(end - datetime.fromisoformat(start).timestamp()))
