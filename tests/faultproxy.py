"""A faulty network for the tests: a real HTTP proxy between boto3 and moto's server that breaks some requests.

boto3 is pointed at the proxy (AWS_ENDPOINT_URL), the proxy forwards to the
emulator over HTTP, and a seeded random draw breaks a share (`rate`) of the
requests, the ways a real network or a struggling service does, in turn:

  reset   the connection is reset (RST) once the request is read: no answer, nothing forwarded
  500     HTTP 500 with an AWS error body (S3's XML, STS's query XML, or JSON for the others)
  closed  the request is forwarded (the work is done) and the connection closed without an answer
  503     HTTP 503, ServiceUnavailable, likewise
  slow    forwarded, and the answer held `slow_seconds`: past a short read timeout the client gives up

`once={"CreateTrainingJob": "closed"}` breaks the first request for that
operation (a JSON API's X-Amz-Target, or a query API's Action) that way, for
a fault at an exact place; `fail_after=N` takes the network down after N
requests went through intact;
`stop()` takes the proxy away (connections refused). What it forwarded intact
and what it broke (by kind) are counted, so a test can show faults happened,
and every request is listed (`seen`), so a test can tell who sent what.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("reset", "500", "closed", "503", "slow")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "expect", "content-length"}
ERRORS = {500: ("InternalError", "InternalFailure", "We encountered an internal error. Please try again."),
          503: ("ServiceUnavailable", "ServiceUnavailable", "Service is unable to handle request.")}


class FaultProxy:
    """An HTTP forwarding proxy on 127.0.0.1 (a free port) in front of `upstream`, breaking a share of requests."""

    def __init__(self, upstream: str, rate: float = 0.0, seed: int = 1, kinds=KINDS, slow_seconds: float = 1.5,
                 fail_after: int | None = None, once: dict[str, str] | None = None):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.rate, self.kinds, self.slow_seconds, self.fail_after = rate, tuple(kinds), slow_seconds, fail_after
        self.once = dict(once or {})
        self.forwarded = 0  # requests passed through intact
        self.broken: collections.Counter = collections.Counter()  # kind -> requests broken that way
        self.seen: list[tuple] = []  # every request: method, path and query, User-Agent, the fault (None: intact)
        self._random = random.Random(seed)
        self._turn = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.url = ""
        self._thread: threading.Thread | None = None

    # --- life ---
    def start(self) -> FaultProxy:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"  # kept once stopped: then nothing answers there
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more proxy: the port is closed and every open connection with it."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.drop_connections()
        server.server_close()  # joins the handler threads
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def heal(self) -> None:
        """The network is back: nothing is broken any more."""
        with self._lock:
            self.rate, self.fail_after = 0.0, None

    @property
    def broken_total(self) -> int:
        with self._lock:
            return sum(self.broken.values())

    # --- what happens to one request ---
    def fate(self, operation: str) -> str | None:
        """The kind of fault for the next request, or None to pass it intact."""
        with self._lock:
            if operation in self.once:
                kind = self.once.pop(operation)
                self.broken[kind] += 1
                return kind
            down = self.fail_after is not None and self.forwarded >= self.fail_after
            if down or self._random.random() < self.rate:
                kind = self.kinds[self._turn % len(self.kinds)]
                self._turn += 1
                self.broken[kind] += 1
                return kind
            self.forwarded += 1
            return None


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the handlers
    block_on_close = True
    proxy: FaultProxy

    def __init__(self, *args, **kwargs):
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self.open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.open_lock:
            self.open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.open_lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    upstream: http.client.HTTPConnection | None = None

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_relay(self) -> None:
        proxy: FaultProxy = self.server.proxy
        body = self._body()
        kind = proxy.fate(self._operation(body))
        with proxy._lock:
            proxy.seen.append((self.command, self.path, self.headers.get("User-Agent", ""), kind))
        if kind == "reset":
            self._reset()
            return
        if kind in ("500", "503"):
            self._error(int(kind), body)
            return
        try:
            answer = self._forward(body)
        except OSError:  # the emulator went away: so does the answer
            self._reset()
            return
        if kind == "closed":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "slow":
            time.sleep(proxy.slow_seconds)
        self._answer(*answer)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_relay

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        if self.upstream is not None:
            self.upstream.close()

    # --- the request ---
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _operation(self, body: bytes) -> str:
        """The API operation, where the request names it: X-Amz-Target (JSON APIs) or Action (query APIs)."""
        target = self.headers.get("X-Amz-Target")
        if target:
            return target.rsplit(".", 1)[-1]
        action = urllib.parse.parse_qs(body.decode("latin-1")).get("Action") if body[:200].count(b"Action=") else None
        return action[0] if action else f"{self.command} {urllib.parse.urlsplit(self.path).path}"

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in (1, 2):  # a kept-alive upstream connection the emulator closed: open a new one
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=60)
            try:
                self.upstream.request(self.command, self.path, body=body if body or self.command in (
                    "PUT", "POST") else None, headers=headers)
                response = self.upstream.getresponse()
                payload = response.read()
                return response.status, response.reason, response.getheaders(), payload
            except (http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --- the answer ---
    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        try:
            self.send_response_only(status, reason)
            length = None
            for name, value in headers:
                if name.lower() == "content-length":
                    length = value
                elif name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            # A HEAD answer keeps the emulator's length (the object's size) and has no body.
            self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client gave up (a slow answer past its read timeout)
            self.close_connection = True

    def _error(self, status: int, body: bytes) -> None:
        s3_code, json_code, message = ERRORS[status]
        request_id = f"FAULTPROXY{time.monotonic_ns()}"
        if self.headers.get("X-Amz-Target"):  # JSON protocols: SageMaker, ECR, CloudWatch Logs
            kind = "application/x-amz-json-1.1"
            payload = json.dumps({"__type": json_code, "message": message}).encode()
        elif body.startswith(b"Action=") or b"&Action=" in body:  # query protocol: STS
            kind = "text/xml"
            payload = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{json_code}</Code><Message>{message}"
                       f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        else:  # S3's REST XML
            kind = "application/xml"
            payload = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3_code}</Code><Message>{message}'
                       f"</Message><RequestId>{request_id}</RequestId></Error>").encode()
        self._answer(status, http.client.responses[status],
                     [("Content-Type", kind), ("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)],
                     b"" if self.command == "HEAD" else payload)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset: the client sees `connection reset by peer`, no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
