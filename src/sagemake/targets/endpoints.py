"""Summary: what is deployed or was transformed: endpoint, job, model sha256, image (the deployment records)

Usage: make endpoints [ENV=...]   (python -m sagemake endpoints)

The last event of each endpoint, transform and served URL in
MODELS_DIR/deployments.jsonl; for ENV's own endpoints, their status and
instances (how many serve now, and how many SageMaker is heading to, which
autoscaling moves) as SageMaker says them now. A URL of `make serve` is listed
only while the server runs: one that was stopped, or whose `make serve` ended
in any way, is not.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError, print_table, say
from sagemake.config import Config, resolve
from sagemake.deployments import RECORDS, current
from sagemake.executors import Executor, for_config
from sagemake.executors.local.guarded import running


def endpoints(config: Config, executor: Executor) -> None:
    rows = [("WHERE", "ENV", "EVENT", "INSTANCES", "DESIRED", "JOB", "SHA256", "IMAGE", "SINCE")]
    latest = current(config)
    for (env, where), entry in sorted(latest.items(), key=lambda item: item[1]["time"], reverse=True):
        event = entry["event"]
        if event == "serve" and not running(entry.get("executor")):
            continue  # a local server lives as long as the `make serve` that started it: this one has stopped
        instances = desired = "-"
        if env == config.env and event.startswith("deploy"):
            found = executor.endpoints().describe(where)
            event = f"{event} ({found['EndpointStatus'] if found else 'gone'})"
            variant = (found or {}).get("ProductionVariants", [{}])[0]
            instances, desired = variant.get("CurrentInstanceCount", "-"), variant.get("DesiredInstanceCount", "-")
        rows.append((where, env, event, instances, desired, entry.get("job", "-"), (entry.get("sha256") or "-")[:12],
                     entry.get("image", "-"), entry["time"]))
    if len(rows) == 1:
        said = "no model is served now, and none was transformed or deployed" if latest else \
            "nothing served, transformed or deployed yet"
        say(f"{said} (the record is {config['MODELS_DIR']}/{RECORDS})")
        return
    print_table(rows)


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make endpoints")
    config = resolve()
    endpoints(config, for_config(config))
    return Exit.OK

