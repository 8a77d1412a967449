"""Summary: serve a fetched model as SageMaker would, on SERVE_PORT (JOB=..., default latest); Ctrl-C stops it

Usage: make serve [JOB=<job>] [SERVE_PORT=8080]   (python -m sagemake serve [JOB])

The fetched model (MODELS_DIR/<job>/) in the engine with the image its
manifest names (`docker run IMAGE serve`), or as a process with the job's
Python: GET /ping and POST /invocations with text/csv or application/json
rows. Ctrl-C, SIGTERM or a closed terminal stop it (the requests in flight finish first).
"""

from __future__ import annotations

import sys

from sagemake.cli import UserError, run, say
from sagemake.config import Config, resolve
from sagemake.executors.local.serving import ServerFailed, start
from sagemake.jobs.training import job_named
from sagemake.models import fetched


def serve(config: Config, name: str | None) -> int:
    folder, manifest = fetched(config, name)
    server = start(config, folder, manifest, config.int("SERVE_PORT"))
    from sagemake.deployments import record

    record(config, "serve", url=server.url, job=manifest["job_name"], sha256=manifest["artifact"]["sha256"],
           image=manifest["image"])
    say(f"serve: {server.url}  (GET /ping, POST /invocations with text/csv or application/json rows)")
    say(f"serve: curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv {server.url}/invocations")
    say("serve: Ctrl-C stops it")
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        say("serve: stopping (SIGTERM: the requests in flight finish first)")
        code = server.stop()
        if code != 0:
            raise ServerFailed(f"the model server exited {code} when stopped") from None
        say("serve: stopped")
        return 0
    server.cleanup()
    raise ServerFailed(f"the model server stopped by itself (exit {code}): its output is above")




def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make serve [JOB=<job>]")
    return serve(resolve(), job_named(argv[0]) if argv else None)


if __name__ == "__main__":
    run(main, sys.argv[1:])
