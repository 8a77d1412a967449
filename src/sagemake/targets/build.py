"""Summary: build (and for AWS push) the training image, tagged by content; skipped locally without an engine

Usage: make build [ENV=...]   (python -m sagemake build)

The image is DOCKERFILE (default docker/Dockerfile; docker/Dockerfile.script
with CODE_MODE=script) built from BUILD_CONTEXT, or TRAINING_IMAGE as it is.
Nothing is built or pushed when the tag is there already (in the local engine
for ENV=local, in ECR otherwise). Locally, sagemake's own image is skipped
with a notice when no engine is reachable: jobs then run as a process.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make build")
    for_config(resolve()).ensure_image()
    return Exit.OK

