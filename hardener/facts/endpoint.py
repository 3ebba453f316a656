"""Where an image's registry API is, named the way Docker names it.

No host: Docker Hub (`registry-1.docker.io`, `library/` in front of an official image's
name); a first path component with `.` or `:` or `localhost` is the host. http for a
registry on this machine (localhost, 127.0.0.0/8, ::1), https otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .auth import is_loopback, registry_key


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port] of the API
    repository: str  # path in the registry, `library/redis` on Docker Hub
    reference: str  # tag or digest
    scheme: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}/v2/{self.repository}"


def endpoint(image: str) -> Endpoint | None:
    """Where the registry API of `image` (no variables left in it) is; None if unusable."""
    name = image.strip()
    if not name or "$" in name or any(c.isspace() for c in name):
        return None
    name, _, digest = name.partition("@")
    colon = name.find(":", name.rfind("/") + 1)
    tag = name[colon + 1 :] if colon >= 0 else "latest"
    name = name[:colon] if colon >= 0 else name
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, path = parts[0].lower(), "/".join(parts[1:])
    else:
        host, path = "docker.io", name
    if registry_key(host) == "docker.io":
        host = "registry-1.docker.io"
        path = path if "/" in path else "library/" + path
    if not path or not tag:
        return None
    local = is_loopback(urlsplit("//" + host).hostname or "")
    return Endpoint(host, path.lower(), digest or tag, "http" if local else "https")
