"""Summary: remove local job and processing folders but the KEEP newest of each (default 5) and any running

Usage: make clean-jobs [KEEP=5] [CHECKPOINTS=keep|delete]   (python -m sagemake clean-jobs [KEEP] [CHECKPOINTS])

The data copies that only removed jobs read go too; a running job, the KEEP
newest, and a copy a running processing job reads are never removed. The
checkpoints of removed jobs stay in JOBS_DIR/checkpoints/<job>/, where
CHECKPOINT_FROM=<job> starts a new job from them, unless CHECKPOINTS=delete.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config

CHOICES = ("keep", "delete")


def main(argv: list[str]) -> int:
    if len(argv) > 2:
        raise UserError("usage: make clean-jobs [KEEP=<count>] [CHECKPOINTS=keep|delete]")
    keep, checkpoints = [*argv, "", ""][:2]
    if keep and not keep.isdigit():
        raise UserError(f"KEEP={keep!r} is not a count of jobs: give a number, e.g. KEEP=5")
    if checkpoints and checkpoints not in CHOICES:
        raise UserError(f"CHECKPOINTS={checkpoints!r}: give keep (the default: removed jobs' checkpoints stay) or "
                        "delete (they go with their jobs)")
    for_config(resolve()).prune(int(keep or 5), checkpoints=checkpoints == "delete")
    return Exit.OK

