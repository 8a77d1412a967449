"""The S3 reads of a re-sync's unchanged check (the bucket's region, the manifest's metadata, the listing's
pages), without boto3: importing boto3 and making an S3 client take longer (about half a second) than the check's
own requests, so `make upload` with nothing changed asks S3 here (unchanged.everywhere).

Requests are signed with Signature Version 4 from the keys in the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, which boto3's chain takes before any profile) and sent with
http.client, HTTPS verified with AWS_CA_BUNDLE, else certifi's bundle, as boto3 does. `reads` answers None
wherever boto3 might connect otherwise: no keys in the environment; a profile named (AWS_PROFILE); a proxy;
FIPS or dual-stack endpoints; an endpoint or S3 settings in the AWS config file's default profile; a bucket name
with dots, or a region outside AWS's standard partition. A request that fails raises Unanswered, and is not
tried again. Either way the caller takes boto3's path, which retries, and explains what is wrong.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import http.client
import logging
import os
import re
import ssl
import urllib.parse
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path

from sagemake.config import Config

TIMEOUT = 10  # seconds for each request; a slower answer is left to boto3's path
EMPTY = hashlib.sha256(b"").hexdigest()  # the payload hash of a request without a body
NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# Settings under which boto3 might connect another way than this module would, or sign as someone else.
ELSEWHERE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
             "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
PROFILE_ELSEWHERE = {"endpoint_url", "services", "s3", "ca_bundle", "use_fips_endpoint", "use_dualstack_endpoint"}
log = logging.getLogger("sagemake.aws.s3read")  # DEBUG=1: each request and its answer's status
wire = logging.getLogger("sagemake.aws.s3read.wire")  # DEBUG=2: what each signature covers, and the signature
PLAIN_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")  # a DNS label: the bucket can be the host's first


class Unanswered(Exception):
    """A read that did not get the answer it asked for."""


def reads(config: Config, environ=os.environ) -> Reads | None:
    """This module's reads for the config's bucket, or None where boto3 might connect otherwise (the module's doc)."""
    keys = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not all(keys) or any(environ.get(name) for name in ELSEWHERE) or _profile_elsewhere(environ):
        return None
    region, bucket = config["AWS_REGION"], config["S3_BUCKET"]
    ignored = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true"
    endpoint = None if ignored else environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:  # an S3-compatible server: the bucket in the path, as boto3 addresses one at an IP address
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname or url.path.strip("/"):
            return None
        return Reads(url.scheme, url.netloc, region, (*keys, environ.get("AWS_SESSION_TOKEN")),
                     environ.get("AWS_CA_BUNDLE"))
    if not PLAIN_BUCKET.fullmatch(bucket) or not re.fullmatch(r"(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-\d", region):
        return None
    return Reads("https", f"s3.{region}.amazonaws.com", region, (*keys, environ.get("AWS_SESSION_TOKEN")),
                 environ.get("AWS_CA_BUNDLE"), virtual=True)


def _profile_elsewhere(environ) -> bool:
    """The AWS config file's default profile says how to reach S3, or the file cannot be read."""
    path = Path(environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws/config").expanduser()
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return True
    return parser.has_section("default") and bool(PROFILE_ELSEWHERE & set(parser.options("default")))


class Reads:
    """Signed GETs and HEADs to one S3 endpoint, each on its own connection (so any thread may send one).
    `virtual`: the bucket is named in the host (<bucket>.<host>), as boto3 addresses AWS's S3, but for a bucket's
    location, which boto3 asks with the bucket in the path; else always in the path."""

    def __init__(self, scheme: str, host: str, region: str, keys: tuple[str, str, str | None],
                 bundle: str | None = None, virtual: bool = False):
        self.scheme, self.host, self.region = scheme, host, region
        self.keys = keys
        self.bundle = bundle
        self.virtual = virtual

    def region_of(self, bucket: str) -> str:
        """The bucket's region (GetBucketLocation)."""
        location = self._listed(bucket, [("location", "")]).text or "us-east-1"
        return "eu-west-1" if location == "EU" else location

    def metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        """The object's user metadata (HeadObject), None when there is no such object."""
        status, headers, _ = self._send("HEAD", bucket, key, [], missing_ok=True)
        if status == 404:
            return None
        return {name[len("x-amz-meta-"):]: value for name, value in headers if name.startswith("x-amz-meta-")}

    def page(self, bucket: str, prefix: str, count: int, start_after: str = "") -> list[tuple[str, int, str]]:
        """Up to `count` (key, size, ETag) under the prefix, after `start_after` (ListObjectsV2), in S3's order."""
        query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(count)), ("encoding-type", "url")]
        if start_after:
            query.append(("start-after", start_after))
        root = self._listed(bucket, query)
        try:
            return [(urllib.parse.unquote_plus(item.findtext(f"{NAMESPACE}Key")),
                     int(item.findtext(f"{NAMESPACE}Size")), item.findtext(f"{NAMESPACE}ETag").strip('"'))
                    for item in root.iter(f"{NAMESPACE}Contents")]
        except (AttributeError, TypeError, ValueError):  # an element missing, or not a number
            raise Unanswered(f"a listing of s3://{bucket}/{prefix} that is not S3's") from None

    def _listed(self, bucket: str, query: list[tuple[str, str]]) -> ElementTree.Element:
        """The XML answer of a GET on the bucket."""
        try:
            return ElementTree.fromstring(self._send("GET", bucket, "", query)[2])
        except ElementTree.ParseError as err:
            raise Unanswered(f"an answer from s3://{bucket} that is not XML: {err}") from None

    def target(self, bucket: str, key: str, query: list[tuple[str, str]]) -> tuple[str, str, str]:
        """The request's host, its path percent-encoded as SigV4 signs it, and its path and query as sent."""
        host, path = self.host, f"/{urllib.parse.quote(bucket, safe='~')}"
        if self.virtual and ("location", "") not in query:
            if not PLAIN_BUCKET.fullmatch(bucket):
                raise Unanswered(f"bucket {bucket} cannot be named in a host")
            host, path = f"{bucket}.{self.host}", ""
        path = path + (f"/{urllib.parse.quote(key, safe='/~')}" if key else "") or "/"
        return host, path, path + ("?" + canonical_query(query) if query else "")

    def _connection(self, host: str) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(host, timeout=TIMEOUT)
        if self.bundle is None:
            try:
                import certifi  # boto3's default bundle, when it is installed
            except ImportError:
                certifi = None
            self.bundle = certifi.where() if certifi else ""
        return http.client.HTTPSConnection(host, timeout=TIMEOUT, context=ssl.create_default_context(
            cafile=self.bundle or None))

    def _send(self, method: str, bucket: str, key: str, query: list[tuple[str, str]],
              missing_ok: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:
        host, path, target = self.target(bucket, key, query)
        headers = {**sign(method, host, path, query, self.region, self.keys, datetime.now(timezone.utc)),
                   "user-agent": "sagemake"}
        log.debug("%s %s://%s%s", method, self.scheme, host, target)
        connection = None
        try:
            connection = self._connection(host)
            connection.request(method, target, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            found = [(name.lower(), value) for name, value in answer.getheaders()]
        except (OSError, http.client.HTTPException) as err:
            raise Unanswered(f"{method} {target}: {err}") from None
        finally:
            if connection:
                connection.close()
        log.debug("  -> %s", answer.status)
        if answer.status == 200 or (missing_ok and answer.status == 404):
            return answer.status, found, body
        raise Unanswered(f"{method} {target}: HTTP {answer.status}")


def canonical_query(query: list[tuple[str, str]]) -> str:
    """The query as SigV4 signs it, and as it is sent: each name and value percent-encoded, sorted."""
    return "&".join(f"{name}={value}" for name, value in sorted(
        (urllib.parse.quote(name, safe="~"), urllib.parse.quote(value, safe="~")) for name, value in query))


def sign(method: str, host: str, path: str, query: list[tuple[str, str]], region: str,
         keys: tuple[str, str, str | None], when: datetime) -> dict[str, str]:
    """The headers of a bodiless S3 request signed with SigV4 (`path` already percent-encoded)."""
    access, secret, token = keys
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": EMPTY, "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, canonical_query(query),
                           *(f"{name}:{headers[name].strip()}" for name in sorted(headers)), "", names, EMPTY])
    scope = f"{day}/{region}/s3/aws4_request"
    text = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={names}, " \
                               f"Signature={signature}"
    wire.debug("canonical request:\n%s\nauthorization: %s", canonical, headers["authorization"])
    return headers
