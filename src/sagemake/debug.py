"""DEBUG: what a command does, traced on stderr, with every credential masked.

DEBUG=1 (any value but empty or 0) turns tracing on, the same way for every step:
  - the shell scripts trace each command they run (`set -x`, lines `+ file:line: ...`; scripts/lib/common.sh);
  - each Python command (sagemake.__main__.run) prints lines `+ sagemake.<what>: ...`: each AWS call (service,
    operation and parameters), the method and URL of each HTTP request it makes and the status of each answer
    (so retries show), where botocore found the credentials, and each command it runs (docker, git, pip);
    the requests `make upload` sends without boto3 (sagemake.aws.s3read) likewise.
DEBUG=2 adds botocore's own debug log: every request's headers and signing, every answer's body; and what
sagemake.aws.s3read signs.

Masked as *** wherever they would appear (tracing never shows them; the one-line error of
every command goes through the same mask):
  - the values of AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_SECURITY_TOKEN, GIT_HTTPS_TOKEN and of any
    other variable whose name says secret, token, password or key (AWS_ACCESS_KEY_ID is an identifier:
    shown as `aws configure list` shows it, its last 4 characters);
  - the keys and tokens in the AWS credentials and config files (AWS_SHARED_CREDENTIALS_FILE,
    AWS_CONFIG_FILE, default ~/.aws/), whichever profile is in use, and the web identity token
    (AWS_WEB_IDENTITY_TOKEN_FILE, CI's OIDC token);
  - credentials botocore resolves or receives while tracing (a session token it sends, the keys of an assumed
    role, the ECR authorization token and the password inside it);
  - by their shape: X-Amz-Security-Token and Authorization values (signatures, Basic and Bearer), the
    `aws_secret_access_key = ...` lines of a credentials file, secret fields of JSON and XML answers, of
    headers and of form bodies (WebIdentityToken=...), and a user or token in a URL (https://user:token@host).
A value shorter than 8 characters is not taken for a credential (masking it would garble the output); the
shapes above are masked whatever their length.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import quote

VARIABLE = "DEBUG"
MASK = "***"
WIRE = 2  # DEBUG=2: botocore's own debug log as well
SHORTEST = 8  # a shorter value is not a credential: masking it would garble the output

SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "GIT_HTTPS_TOKEN")
KEY_ID_VARIABLES = ("AWS_ACCESS_KEY_ID",)  # identifiers: the last 4 characters stay, as `aws configure list` shows
# Names of variables and fields that hold a secret: in the environment, in a file, in an AWS answer...
SECRET_NAME = re.compile(r"secret|token|passw|credential|authorization|signature|private.?key|api.?key", re.I)
# ... except these, which name a file, a page of an answer (NextToken, nextForwardToken, ...), or the key id and
# scope of a signature (Credential=AKIA.../20261202/eu-central-1/s3/aws4_request).
NOT_SECRET_NAME = re.compile(r"(_FILE|_PATH|_DIR)$|(next|continuation|forward|backward|sequence|client|idempotency)"
                             r"[-_]?token$|^(x-amz-)?credential$", re.I)
FILE_KEYS = ("aws_secret_access_key", "aws_session_token", "aws_security_token")
FILE_KEY_IDS = ("aws_access_key_id",)


def secret_name(name) -> bool:
    """Whether a variable, header or field of this name holds a secret."""
    name = str(name)
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def _field(found: re.Match) -> str:
    if not secret_name(found.group("name")):
        return found.group(0)
    return f"{found.group('head')}{MASK}{found.group('tail')}"


_FIELD = r"(?P<name>[A-Za-z0-9_-]*(?:secret|token|passw|credential)[A-Za-z0-9_-]*)"


@functools.cache
def shapes() -> list:
    """(pattern, replacement) pairs: secrets recognised by where they stand, whatever their value (compiled on
    first use, so that importing this module costs next to nothing)."""
    return [
        (re.compile(r"(x-amz-security-token['\"]?\s*[:=]\s*(?:b?['\"])?)[^\s'\",&}\\]+", re.I), rf"\1{MASK}"),
        (re.compile(r"((?:x-amz-)?signature['\"]?\s*[:=]\s*(?:b?['\"])?)[0-9a-f]{16,}", re.I), rf"\1{MASK}"),
        (re.compile(r"(authorization['\"]?\s*[:=]\s*(?:b?['\"])?\s*(?:basic|bearer|token)\s+)[^\s'\",]+", re.I),
         rf"\1{MASK}"),
        (re.compile(r"\b((?:Basic|Bearer)\s+)[A-Za-z0-9+/=._~-]{16,}"), rf"\1{MASK}"),
        (re.compile(r"\b((?:aws_secret_access_key|aws_session_token|aws_security_token)\s*[=:]\s*)\S+", re.I),
         rf"\1{MASK}"),
        # JSON and Python reprs: "SecretAccessKey": "...", 'authorizationToken': b'...'
        (re.compile(rf"(?P<head>(?P<q>['\"]){_FIELD}(?P=q)\s*:\s*b?(?P<v>['\"]))[^'\"]*(?P<tail>(?P=v))", re.I),
         _field),
        # XML: <SecretAccessKey>...</SecretAccessKey>, <SessionToken>...</SessionToken>
        (re.compile(rf"(?P<head><{_FIELD}>)[^<]*(?P<tail></(?P=name)>)", re.I), _field),
        # A query string or form body: ...&WebIdentityToken=eyJ...&...
        (re.compile(rf"(?P<head>(?:^|(?<=[?&'\"\s])){_FIELD}=)[^&\s'\"]+(?P<tail>)", re.I), _field),
        # A user or token in a URL: https://user:token@host, https://token@host (ssh's git@host stays).
        (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@:'\"]*:[^/\s@'\"]+@", re.I), rf"\1{MASK}@"),
        (re.compile(r"\b(https?://)[^/\s@:'\"]+@", re.I), rf"\1{MASK}@"),
    ]


def level(environ=None) -> int:
    """0 (off), 1 (DEBUG=1: trace) or 2 (DEBUG=2: botocore's own debug log too)."""
    value = (os.environ if environ is None else environ).get(VARIABLE, "").strip()
    if value in ("", "0"):
        return 0
    return WIRE if value.isdigit() and int(value) >= WIRE else 1


class Masker:
    """Replaces every credential it knows of, and every secret it recognises by its shape, with ***."""

    def __init__(self, environ=None):
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._key_ids: set[str] = set()
        self._literal = None
        environ = os.environ if environ is None else environ
        for name, value in environ.items():
            if name in KEY_ID_VARIABLES:
                self.learn_key_id(value)
            elif name in SECRET_VARIABLES or secret_name(name):
                self.learn(value)
        self.learn_files(environ)

    def learn(self, value) -> None:
        """A secret value, from now on masked in every form it travels in (as it is, URL-encoded, base64)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str) or len(value.strip()) < SHORTEST:
            return
        value = value.strip()
        forms = {value, quote(value, safe=""), base64.b64encode(value.encode()).decode().rstrip("=")}
        # GIT_HTTPS_TOKEN travels as a Basic header of x-access-token:<token> (scripts/prepare.sh)
        forms.add(base64.b64encode(f"x-access-token:{value}".encode()).decode().rstrip("="))
        with self._lock:
            if forms - self._secrets:
                self._secrets |= forms
                self._literal = None

    def learn_key_id(self, value) -> None:
        if isinstance(value, str) and len(value.strip()) >= SHORTEST:
            with self._lock:
                self._key_ids.add(value.strip())
                self._literal = None

    def learn_files(self, environ) -> None:
        """Every key and token in the AWS credentials and config files, whatever the profile in use, and the web
        identity token (CI's OIDC token) botocore exchanges for credentials."""
        token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        if token_file:
            try:
                self.learn(Path(token_file).read_text(encoding="utf-8", errors="replace")[:100_000])
            except OSError:
                pass
        home = environ.get("HOME") or (str(Path.home()) if environ is os.environ else "")
        for variable, default in (("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
                                  ("AWS_CONFIG_FILE", ".aws/config")):
            if not (environ.get(variable) or home):
                continue
            path = Path(os.path.expanduser(environ.get(variable) or str(Path(home, default))))
            import configparser

            parser = configparser.RawConfigParser(strict=False, interpolation=None)
            try:
                parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
            except (OSError, configparser.Error):
                continue
            for section in parser.sections():
                for key, value in parser.items(section):
                    if key in FILE_KEY_IDS:
                        self.learn_key_id(value)
                    elif key in FILE_KEYS or secret_name(key):
                        self.learn(value)

    def learn_from(self, value) -> None:
        """The secrets in an AWS answer or request (dicts, lists, headers), found by their field names."""
        if isinstance(value, dict) or hasattr(value, "items"):
            for key, item in value.items():
                name = str(key)
                if secret_name(name):
                    if isinstance(item, (str, bytes)):
                        self.learn(item)
                        if name.lower() == "authorizationtoken":  # ECR's: base64 of user:password
                            self.learn(_password_in(item))
                        elif name.lower() == "authorization":
                            self.learn(_signature_in(item))
                    else:
                        self.learn_from(item)
                else:
                    self.learn_from(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.learn_from(item)

    def __call__(self, text: str) -> str:
        literal = self._literal
        if literal is None:
            with self._lock:
                parts = [(value, MASK) for value in self._secrets]
                parts += [(value, "*" * 16 + value[-4:]) for value in self._key_ids]
                parts.sort(key=lambda part: -len(part[0]))
                replacements = dict(parts)
                pattern = re.compile("|".join(re.escape(value) for value, _ in parts)) if parts else False
                self._literal = literal = (pattern, replacements)
        pattern, replacements = literal
        if pattern:
            text = pattern.sub(lambda found: replacements[found.group(0)], text)
        for shape, replacement in shapes():
            text = shape.sub(replacement, text)
        return text

    def shown(self, value, limit: int = 300) -> str:
        """A value for a trace line: secret fields masked by name, long strings and bodies cut short."""
        return self(_shown(value, limit))


def _shown(value, limit: int) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {repr(MASK) if secret_name(key) else _shown(item, limit)}"
                               for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(item, limit) for item in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _password_in(token) -> str:
    try:
        return base64.b64decode(token).decode().partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        return ""


def _signature_in(header) -> str:
    if isinstance(header, bytes):
        header = header.decode("utf-8", "replace")
    return header.rpartition("Signature=")[2] if "Signature=" in header else ""


_masker: Masker | None = None


def masker() -> Masker:
    """The process's masker: made once, it learns what tracing sees."""
    global _masker
    if _masker is None:
        _masker = Masker()
    return _masker


def mask(text: str) -> str:
    """text with every credential known or recognised replaced by ***."""
    return masker()(text)


def enable(environ=None) -> int:
    """Turn on this process's tracing for the level DEBUG asks (see the module's docstring); returns it."""
    import logging
    import shlex

    wanted = level(environ)
    if not wanted:
        return 0
    secrets = masker()

    class Masked(logging.Formatter):
        def format(self, record):
            return secrets(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Masked("+ %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.raiseExceptions = False  # a record that cannot be formatted is dropped, never printed raw
    logging.getLogger("sagemake").setLevel(logging.DEBUG)
    logging.getLogger("botocore.credentials").setLevel(logging.INFO)  # where the credentials were found
    logging.getLogger("botocore.retries").setLevel(logging.DEBUG)  # retries and why...
    if wanted < WIRE:  # ... not each call that needs none
        handler.addFilter(lambda record: not record.name.startswith("botocore.retries") or
                          record.getMessage() != "Not retrying request.")
    if wanted >= WIRE:
        for name in ("botocore", "boto3", "s3transfer", "urllib3"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    else:
        logging.getLogger("sagemake.aws.s3read.wire").setLevel(logging.INFO)  # its signing is DEBUG=2's

    _trace_aws_calls(secrets, logging.getLogger("sagemake.aws.api"))
    commands = logging.getLogger("sagemake.run")

    def audit(event, args):
        if event != "subprocess.Popen":
            return
        try:  # an audit hook that raises would stop the command itself
            argv = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
            commands.debug("%s", shlex.join(os.fsdecode(word) for word in argv))
        except Exception:  # noqa: BLE001 - tracing never stops the work
            pass

    sys.addaudithook(audit)
    return wanted


def _trace_aws_calls(secrets: Masker, log) -> None:
    """Each AWS call through botocore's history recorder, which every client of every session reports to."""
    from botocore.history import BaseHistoryHandler, get_global_history_recorder

    class Trace(BaseHistoryHandler):
        def emit(self, event_type, payload, source):
            if event_type == "API_CALL":
                log.debug("%s.%s %s", payload["service"], payload["operation"], secrets.shown(payload["params"]))
            elif event_type == "HTTP_REQUEST":
                secrets.learn_from(payload.get("headers") or {})
                log.debug("  %s %s", payload.get("method"), payload.get("url"))
            elif event_type == "HTTP_RESPONSE":
                log.debug("  -> %s", payload.get("status_code"))
            elif event_type == "PARSED_RESPONSE":
                secrets.learn_from(payload)

    recorder = get_global_history_recorder()
    recorder.add_handler(Trace())
    recorder.enable()
