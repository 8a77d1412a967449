"""Summary: serve a fetched model as SageMaker would, on SERVE_PORT (JOB=..., default latest); Ctrl-C stops it

Usage: make serve [JOB=<job>] [SERVE_PORT=8080]   (python -m sagemake serve [JOB])

The fetched model (MODELS_DIR/<job>/) in the engine with the image its
manifest names (`docker run IMAGE serve`), or as a process with the job's
Python: GET /ping and POST /invocations with text/csv or application/json
rows. Ctrl-C, SIGTERM or a closed terminal stop it (the requests in flight finish first), at
any moment, even while it starts; it also ends with this command however that ends. A container
is reached on its port 8080, mapped to SERVE_PORT, unless its image declares the label
com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true (then SAGEMAKER_BIND_TO_PORT says where).
CAPTURE_PERCENT of the requests and their answers are captured in MODELS_DIR/<job>/capture/, in SageMaker's data
capture format, by a proxy on SERVE_PORT in front of the model server (CAPTURE_PERCENT=0: none, and no proxy).
"""

from __future__ import annotations

import os

from sagemake.capture import CAPTURE, capturing
from sagemake.cli import UserError, say
from sagemake.config import Config, resolve
from sagemake.executors import for_config
from sagemake.executors.local.guarded import process_identity
from sagemake.executors.local.serving import ServerFailed, Serving
from sagemake.jobs.training import job_named
from sagemake.models import fetched


def serve(config: Config, name: str | None) -> int:
    folder, manifest = fetched(config, name, lambda: for_config(config))
    capture = capturing(config, folder, "serve")
    with Serving(config, folder, manifest, config.int("SERVE_PORT"), capture=capture) as server:
        from sagemake.deployments import record

        # Who serves it: `make endpoints` lists the URL while that process runs (the server ends with it).
        record(config, "serve", url=server.url, job=manifest["job_name"], sha256=manifest["artifact"]["sha256"],
               image=manifest["image"], executor=process_identity(os.getpid()))
        say(f"serve: {server.url}  (GET /ping, POST /invocations with text/csv or application/json rows)")
        say(f"serve: curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv {server.url}/invocations")
        if server.front is not None:
            say(f"serve: {capture.percent}% of the requests captured in {folder / CAPTURE}/ (`make drift` compares "
                "them with the training data; CAPTURE_PERCENT=0 turns it off)")
        elif capture is None:
            say("serve: no requests captured (CAPTURE_PERCENT=0)")
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
    raise ServerFailed(f"the model server stopped by itself (exit {code}): its output is above")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make serve [JOB=<job>]")
    return serve(resolve(), job_named(argv[0]) if argv else None)

