"""Completion webhooks, signed the Standard Webhooks way (SPEC §9).

A delivery is one POST of a JSON event with `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. The id is the
same for every attempt at one event, so receivers can drop duplicates; the timestamp is
that attempt's own, so it passes the receiver's freshness check.

Targets that resolve to loopback, private, link-local, CGNAT, multicast, reserved or cloud
metadata addresses are refused unless ``allow_private``. The check happens when the socket
is opened, on the very address it connects to, so a name that resolves to a public address
when the job is created and to a private one later (DNS rebinding) is still refused.
Redirects are not followed and proxies from the environment are not used.

Each attempt has a hard total deadline (`timeout`): a receiver that drip-feeds its answer a byte
at a time would pass every per-read timeout, so when the deadline passes, the attempt's sockets
are shut down from a timer and the attempt fails like any other. Only the status line and
headers are read; the body of the answer is never waited for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import _set_socket_options
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from snapasset.errors import utcnow_iso

__all__ = ["sign", "build_event", "with_absolute_urls", "deliver", "check_target", "message_id", "guarded_session",
           "WebhookDeliveryError",
           "WebhookTargetRefused", "EVENT_COMPLETED", "EVENT_FAILED"]

EVENT_COMPLETED = "job.completed"
EVENT_FAILED = "job.failed"
SECRET_PREFIX = "whsec_"
USER_AGENT = "SnapAsset-Webhooks/1"

# Never reachable even with allow_private: nothing legitimate lives at a cloud metadata address.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))


class WebhookDeliveryError(Exception):
    """The event did not reach the receiver (non-2xx, or no connection); try again later."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class WebhookTargetRefused(WebhookDeliveryError):
    """The target URL is not one we send to (scheme, credentials, or a non-public address)."""


# -- signing -------------------------------------------------------------------------------

def _secret_bytes(secret: str) -> bytes:
    if not secret:
        raise ValueError("the webhook secret is empty")
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:
        raise ValueError(f"the webhook secret must be {SECRET_PREFIX}<base64>") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of "{msg_id}.{timestamp}.{body}" under a `whsec_<base64>` secret."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_id(job_id: str, event_type: str) -> str:
    """The stable `webhook-id` of one job's event: the same on every delivery attempt."""
    return "msg_" + hashlib.sha256(f"{job_id}:{event_type}".encode()).hexdigest()[:32]


def build_event(event_type: str, job_id: str, *, result: dict | None = None, error: dict | None = None) -> dict:
    if event_type == EVENT_COMPLETED:
        if result is None or error is not None:
            raise ValueError(f"{EVENT_COMPLETED} carries a result and no error")
        return {"type": event_type, "jobId": job_id, "result": result, "timestamp": utcnow_iso()}
    if event_type == EVENT_FAILED:
        if error is None or result is not None:
            raise ValueError(f"{EVENT_FAILED} carries an error and no result")
        return {"type": event_type, "jobId": job_id, "error": error, "timestamp": utcnow_iso()}
    raise ValueError(f"unknown webhook event type {event_type!r}")


def with_absolute_urls(payload: dict, base_url: str | None) -> dict:
    """The event with local storage's `/media/...` image paths made absolute under ``base_url``
    (SNAPASSET_PUBLIC_URL): a receiver has no request of its own to resolve them against.
    Absolute URLs (Supabase) and a missing base leave the event as it is."""
    result = payload.get("result")
    if not base_url or not isinstance(result, dict) or not isinstance(result.get("images"), list):
        return payload
    base = base_url.rstrip("/")
    images = [{**image, "url": base + image["url"]}
              if isinstance(image, dict) and isinstance(image.get("url"), str) and image["url"].startswith("/")
              else image for image in result["images"]]
    return {**payload, "result": {**result, "images": images}}


# -- where we may connect ------------------------------------------------------------------

def _blocked_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):   # NAT64
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _blocked_reason(embedded)
    if ip in _METADATA:
        return "a cloud metadata address"
    for label, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                        ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if flag:
            return f"a {label} address"
    if not ip.is_global:   # CGNAT 100.64/10, benchmarking, documentation ranges…
        return "a non-public address"
    return None


def _check_address(ip_text: str, allow_private: bool) -> None:
    ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
    if ip in _METADATA or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped in _METADATA):
        raise WebhookTargetRefused(f"webhook target address {ip} is a cloud metadata address")
    if allow_private:
        return
    reason = _blocked_reason(ip)
    if reason:
        raise WebhookTargetRefused(f"webhook target address {ip} is {reason}; "
                                   "set SNAPASSET_WEBHOOK_ALLOW_PRIVATE=true to allow it")


def _resolve(host: str, port: int) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookDeliveryError(f"cannot resolve webhook host {host!r}: {exc.strerror}") from None


def check_target(url: str, allow_private: bool = False, *, resolve: bool = True) -> None:
    """Validate a webhook URL up front: http(s), a host, no credentials, not a refused address.

    With ``resolve`` a host name is looked up too (an unresolvable name is not refused here:
    DNS may be briefly down; the connection-time check still applies). Raises
    WebhookTargetRefused.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookTargetRefused("webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetRefused("webhook URL must be http or https")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetRefused("webhook URL must not contain credentials")
    host = parts.hostname
    if not host:
        raise WebhookTargetRefused("webhook URL has no host")
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        _check_address(host, allow_private)
        return
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise WebhookTargetRefused("webhook target localhost is a loopback address; "
                                   "set SNAPASSET_WEBHOOK_ALLOW_PRIVATE=true to allow it")
    if resolve:
        try:
            infos = _resolve(host, port or (443 if parts.scheme == "https" else 80))
        except WebhookDeliveryError:
            return
        for *_, sockaddr in infos:
            _check_address(sockaddr[0], allow_private)


def _connect_checked(host: str, port: int, timeout, source_address, socket_options,
                     allow_private: bool) -> socket.socket:
    """Resolve once, refuse if any answer is not allowed, then connect to those same addresses."""
    infos = _resolve(host, port)
    for *_, sockaddr in infos:
        _check_address(sockaddr[0], allow_private)
    last_error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            _set_socket_options(sock, socket_options)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last_error = exc
            sock.close()
    raise last_error or OSError(f"no address to connect to for {host}")


class _CheckedConnectionMixin:
    allow_private = False
    opened: list   # every connection of this delivery attempt (set per guarded_session by _adapter)

    def _new_conn(self) -> socket.socket:
        self.opened.append(self)
        try:
            return _connect_checked(self._dns_host, self.port, self.timeout, self.source_address,
                                    self.socket_options, self.allow_private)
        except WebhookDeliveryError:
            raise
        except OSError as exc:
            from urllib3.exceptions import NewConnectionError
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


def _adapter(allow_private: bool, opened: list) -> HTTPAdapter:
    """A requests adapter whose every connection is opened by _connect_checked (and listed in
    `opened`)."""
    http_conn = type("CheckedHTTPConnection", (_CheckedConnectionMixin, HTTPConnection),
                     {"allow_private": allow_private, "opened": opened})
    https_conn = type("CheckedHTTPSConnection", (_CheckedConnectionMixin, HTTPSConnection),
                      {"allow_private": allow_private, "opened": opened})
    http_pool = type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})

    class CheckedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return CheckedAdapter(max_retries=0)


def guarded_session(allow_private: bool, opened: list | None = None) -> requests.Session:
    """A requests session whose every connection goes only to addresses the guard allows
    (also used to fetch reference pictures, snapasset.references); each connection it opens is
    added to `opened`, for a deadline to cut off."""
    session = requests.Session()
    session.trust_env = False          # no proxies (they would connect for us, unchecked) and no .netrc
    adapter = _adapter(allow_private, [] if opened is None else opened)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# -- delivery ------------------------------------------------------------------------------

def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(url: str, payload: dict, *, secret: str, msg_id: str, allow_private: bool = False,
            timeout: float = 10.0) -> int:
    """POST one signed event; return the 2xx status. Raises WebhookDeliveryError otherwise
    (WebhookTargetRefused when the target is not allowed: retrying will not help)."""
    check_target(url, allow_private, resolve=False)
    body = encode_body(payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
    host = urlsplit(url).hostname
    opened: list = []
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        for connection in list(opened):
            sock = getattr(connection, "sock", None)   # the TLS socket once wrapped
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)     # wakes the blocked read at once
            except OSError:   # closed meanwhile
                pass

    deadline = threading.Timer(timeout, cut_off)
    deadline.daemon = True
    with guarded_session(allow_private, opened) as session:
        deadline.start()
        try:
            response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                                    stream=True)
            status = response.status_code
            response.close()
        except WebhookDeliveryError:
            raise
        except requests.RequestException as exc:
            if expired.is_set() or isinstance(exc, requests.Timeout):
                raise WebhookDeliveryError(f"webhook to {host} did not answer within {timeout:g}s") from None
            raise WebhookDeliveryError(f"webhook to {host} failed: {type(exc).__name__}") from None
        finally:
            deadline.cancel()
    if not 200 <= status < 300:
        raise WebhookDeliveryError(f"webhook to {host} answered {status}", status=status)
    return status
