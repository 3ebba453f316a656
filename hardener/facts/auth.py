"""Registry credentials and challenges.

The user's own credentials come from the `auths` of Docker's client config
(`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the base64 `auth`
(`user:password`) or `username` / `password` of the entry for the registry host (Docker
Hub's entry is `https://index.docker.io/v1/`). Credential helpers (`credsStore`,
`credHelpers`) are not run. A `Credentials` object never shows its content: its repr and
str are redacted, it is not serialisable, and nothing here puts it into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class Credentials:
    """A user name and secret for one registry; shows neither."""

    __slots__ = ("_header",)

    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        object.__setattr__(self, "_header", "Basic " + token)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are read-only")

    def authorization(self) -> str:
        """The value of an `Authorization: Basic ...` header."""
        return self._header

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Credentials are not serialisable")


def registry_key(host: str) -> str:
    """The host an `auths` key or a registry name stands for (`https://index.docker.io/v1/`
    and `registry-1.docker.io` are both Docker Hub)."""
    text = host.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/", 1)[0].lower()
    return HUB if text in _HUB_ALIASES else text


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_credentials(host: str, path: Path | None = None) -> Credentials | None:
    """The credentials the Docker client config holds for `host`, else None (also for an
    unreadable or malformed file: anonymous access is then tried)."""
    try:
        data = json.loads((path or config_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = registry_key(host)
    for key, entry in auths.items():
        if not isinstance(entry, dict) or registry_key(str(key)) != wanted:
            continue
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, secret = base64.b64decode(encoded, validate=False).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if sep:
                return Credentials(user, secret)
        user, secret = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(secret, str) and user:
            return Credentials(user, secret)
    return None


def parse_challenge(header: str | None) -> tuple[str, dict[str, str]] | None:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params


def may_send_secret(url: str) -> bool:
    """Credentials and tokens go only over https, or to this machine."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")
