"""What a job is: one module per kind (training, processing, tuning, transform, endpoint), each its request and
its SageMaker API nouns. Nothing here imports an executor or a target.
"""

import hashlib
import json
import time
from datetime import datetime

TERMINAL = ("Completed", "Failed", "Stopped")  # every kind's statuses that end a job
DIGEST_TAG = "sagemake:request-digest"  # on every job sagemake submits: what makes two of them the same job
TRACEBACK = "Traceback (most recent call last):"


def reason_line(reason: str) -> str:
    """A failure reason in one line, for the one line that ends a failed command. A reason of several lines (an image
    that writes its traceback to output/failure, as AWS's own examples do, or the training toolkit's report) is told
    by its first line (with the next when the first only introduces it, or a bare traceback's last line: the error),
    and how many lines it has: the rest is in the job's log, printed above it."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return reason.strip()
    first = lines[0]
    if first.endswith(TRACEBACK):
        first = first[:-len(TRACEBACK)] + lines[-1]
    elif first.endswith(":"):
        first = f"{first} {lines[1]}"
    return f"{first} [{len(lines)} lines in all]"


def request_digest(request: dict, name: str) -> str:
    """What makes two Create* requests the same job: all of the request but its name (wherever the name stands: in
    output and checkpoint places too) and its tags, with the data tags kept (other data makes another job), and the
    job whose checkpoints it starts from (another start makes another job)."""
    kept = ("sagemake:data:", "sagemake:checkpoint-from")
    tags = sorted((t["Key"], t["Value"]) for t in request.get("Tags", []) if t["Key"].startswith(kept))
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
