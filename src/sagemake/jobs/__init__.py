"""What a job is: one module per kind (training, processing, tuning, transform, endpoint), each its request and
its SageMaker API nouns. Nothing here imports an executor or a target.
"""

import hashlib
import json

TERMINAL = ("Completed", "Failed", "Stopped")  # every kind's statuses that end a job
DIGEST_TAG = "sagemake:request-digest"  # on every job sagemake submits: what makes two of them the same job


def request_digest(request: dict, name: str) -> str:
    """What makes two Create* requests the same job: all of the request but its name (wherever the name stands: in
    output and checkpoint places too) and its tags, with the data tags kept (other data makes another job), and the
    job whose checkpoints it starts from (another start makes another job)."""
    kept = ("sagemake:data:", "sagemake:checkpoint-from")
    tags = sorted((t["Key"], t["Value"]) for t in request.get("Tags", []) if t["Key"].startswith(kept))
    rest = {key: value for key, value in request.items() if key != "Tags"}
    text = json.dumps([rest, tags], sort_keys=True).replace(name, "<name>")
    return hashlib.sha256(text.encode()).hexdigest()[:32]
