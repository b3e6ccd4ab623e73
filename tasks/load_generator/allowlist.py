"""Which targets the generator may load (``CLEARANCE_LOAD_TEST_ALLOWED_HOSTS``), checked before anything is sent.

Entries (case-insensitive):

- ``host`` — that host on any port; ``host:port`` — only that port (a URL without a port has its scheme's:
  80 for http, 443 for https);
- ``*.example.com`` (optionally ``:port``) — any name ending in ``.example.com``, never ``example.com`` itself;
- IP literals, normalised on both sides (``[::1]``, ``::1`` and ``0:0::1`` are one address; ``[::1]:8080``
  with a port);
- ``sagemaker:<endpoint_name>`` — that SageMaker endpoint (whatever the region).

An empty list refuses every target. Names are compared as written, before DNS: the list says which names
may be loaded, so a name that resolves to an allowlisted address is still refused unless listed itself.
Hosts that are neither an IP literal nor a plain DNS name (``a-z 0-9 . - _``) are refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tasks.load_generator.models import LoadTarget

_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_ENDPOINT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int


def normalise_host(host: str) -> str | None:
    """The canonical form of a host (lower case, no trailing dot, IP literals compressed), or None if invalid."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    host = host.removesuffix(".")
    if not host or len(host) > 253 or not _NAME.match(host):
        return None
    return host


def parse_url(url: str) -> tuple[HostPort | None, str | None]:
    """(host and port, None) of an http(s) URL, or (None, why it is not acceptable)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return None, "the URL holds whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return None, f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT:
        return None, f"only http and https URLs can be loaded, not {scheme or 'a URL without a scheme'!r}"
    if parts.username is not None or parts.password is not None:
        return None, "the URL carries credentials (user:password@): pass them as a secret header instead"
    host = normalise_host(parts.hostname or "")
    if host is None:
        return None, "the URL has no valid host"
    return HostPort(host, port if port is not None else _DEFAULT_PORT[scheme]), None


def _entry_matches(entry: str, where: HostPort) -> bool:
    entry = entry.strip().lower()
    if not entry or entry.startswith("sagemaker:"):
        return False
    host, port = entry, None
    if entry.startswith("["):  # [v6] or [v6]:port
        close = entry.find("]")
        if close < 0:
            return False
        host, rest = entry[: close + 1], entry[close + 1:]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return False
            port = int(rest[1:])
    elif entry.count(":") == 1:  # name:port or v4:port (a bare v6 literal has several colons)
        host, _, port_text = entry.partition(":")
        if not port_text.isdigit():
            return False
        port = int(port_text)
    if port is not None and port != where.port:
        return False
    if host.startswith("*."):
        suffix = normalise_host(host[2:])
        return suffix is not None and where.host.endswith("." + suffix)
    return normalise_host(host) == where.host


def check_target(target: LoadTarget, allowed: Sequence[str]) -> str | None:
    """None when ``target`` may be loaded, else why not (naming the host and the allowlist's size)."""
    listed = [e for e in allowed if e.strip()]
    hint = (f"not in CLEARANCE_LOAD_TEST_ALLOWED_HOSTS ({len(listed)} entries)" if listed
            else "CLEARANCE_LOAD_TEST_ALLOWED_HOSTS is empty: every target is refused")
    if target.kind == "sagemaker":
        name = target.endpoint_name or ""
        if not _ENDPOINT.match(name):
            return f"invalid SageMaker endpoint name {name[:80]!r}"
        wanted = f"sagemaker:{name.lower()}"
        if not any(e.strip().lower() == wanted for e in listed):
            return f"SageMaker endpoint {name!r}: {hint} (add 'sagemaker:{name}')"
        if target.endpoint_url is None:
            return None
        where, why = parse_url(target.endpoint_url)
    else:
        where, why = parse_url(target.url or "")
    if where is None:
        return why
    if any(_entry_matches(e, where) for e in listed):
        return None
    shown = f"[{where.host}]" if ":" in where.host else where.host
    return f"host {shown}:{where.port}: {hint}"
