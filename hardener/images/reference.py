"""Image references: what an ``image:`` string names. Pure string parsing, no I/O.

Parsing (:func:`parse_image`) follows Docker's reference grammar, loosely:

* surrounding whitespace is stripped; inner whitespace, an empty string, an unterminated
  ``${`` or a lone ``$`` make the reference unparseable (``None``);
* ``@digest`` is split off first, then ``:tag`` from the *last* path component, so a
  registry port (``registry:5000/app``) is never mistaken for a tag;
* Docker's registry rule: with two or more path components, the first one is a registry
  when it contains ``.`` or ``:`` or is ``localhost``. A first component that contains
  ``${...}``/``$VAR`` interpolation is treated as an *unknown registry* and kept verbatim
  (``"${REGISTRY:-docker.io}"``) so the rest still matches; entries that restrict
  ``registries`` never match an unknown registry;
* Docker Hub (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``) becomes
  ``registry=None``; a leading ``library/`` namespace is stripped whatever the registry
  (pull-through mirrors keep Hub's ``library/`` prefix, e.g. ``mirror.gcr.io/library/redis``);
* registry and repository are lower-cased (Docker would reject upper case; we still want
  to classify the service), the tag is kept as written;
* interpolation inside the repository path (``ghcr.io/${ORG}/app``, ``${IMAGE}``) makes
  the image unidentifiable: ``None``. Interpolation in the tag or digest is kept verbatim
  and makes the tag *unknown* (:attr:`ImageRef.tag_known`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "parse_image"]

_HUB_REGISTRIES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MASK = "\x00"  # stands for one character inside an interpolation
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REGISTRY = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MASKED_TAG = re.compile(r"[A-Za-z0-9_.\x00-]+")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+")
_SIMPLE_VAR = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ImageRef:
    """A parsed ``image:`` value.

    ``registry`` is ``None`` for Docker Hub, lower-case host[:port] otherwise, or the
    verbatim ``${...}`` text when the registry is interpolated. ``repository`` is
    lower-case with Hub's ``library/`` stripped. ``tag`` and ``digest`` are kept as
    written (``None`` when absent).
    """

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def tag_known(self) -> bool:
        """True when the tag is present and free of ``$`` interpolation.

        An absent tag (``postgres``, ``postgres@sha256:…``) is *unknown* too: it is not
        used to select tag-specific entries.
        """
        return self.tag is not None and "$" not in self.tag

    @property
    def registry_known(self) -> bool:
        """False when the registry is interpolated (``${REGISTRY}/…``)."""
        return self.registry is None or "$" not in self.registry


def _mask_interpolation(text: str) -> str | None:
    """Replace every character of ``${...}``, ``$VAR`` and ``$$`` by ``_MASK``.

    The result has the same length as ``text``, so positions found in it slice the
    original. ``None`` when an interpolation is unterminated or a ``$`` stands alone.
    """
    out = list(text)
    i = 0
    n = len(text)
    while i < n:
        if text[i] != "$":
            i += 1
            continue
        if text.startswith("$$", i):
            end = i + 2
        elif text.startswith("${", i):
            depth = 0
            j = i
            end = -1
            while j < n:
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        end = j + 1
                        break
                j += 1
            if end < 0:
                return None
        else:
            m = _SIMPLE_VAR.match(text, i)
            if m is None:
                return None
            end = m.end()
        for k in range(i, end):
            out[k] = _MASK
        i = end
    return "".join(out)


def parse_image(ref: str) -> ImageRef | None:
    """Parse an ``image:`` string into an :class:`ImageRef`, or ``None`` if unusable.

    See the module docstring for the rules. Examples::

        parse_image("postgres:16-alpine")  -> ImageRef(None, "postgres", "16-alpine", None)
        parse_image("docker.io/library/postgres:16") -> ImageRef(None, "postgres", "16", None)
        parse_image("registry:5000/team/app:1.2") -> ImageRef("registry:5000", "team/app", "1.2", None)
        parse_image("${REGISTRY:-docker.io}/library/redis:${TAG:-7}")
            -> ImageRef("${REGISTRY:-docker.io}", "redis", "${TAG:-7}", None)
        parse_image("${IMAGE}") -> None
    """
    if not isinstance(ref, str):
        return None
    text = ref.strip()
    if not text or _MASK in text or any(c.isspace() for c in text):
        return None
    masked = _mask_interpolation(text)
    if masked is None:
        return None

    digest: str | None = None
    if masked.count("@") > 1:
        return None
    at = masked.find("@")
    if at >= 0:
        digest = text[at + 1 :]
        masked_digest = masked[at + 1 :]
        if not digest:
            return None
        if _MASK not in masked_digest and not _DIGEST.fullmatch(digest):
            return None
        text, masked = text[:at], masked[:at]

    tag: str | None = None
    last_slash = masked.rfind("/")
    colon = masked.find(":", last_slash + 1)
    if colon >= 0:
        tag = text[colon + 1 :]
        masked_tag = masked[colon + 1 :]
        if not (_MASKED_TAG if _MASK in masked_tag else _TAG).fullmatch(masked_tag):
            return None
        text, masked = text[:colon], masked[:colon]

    if not text:
        return None
    starts = [0]
    for i, c in enumerate(masked):
        if c == "/":
            starts.append(i + 1)
    parts = [text[s : (starts[k + 1] - 1 if k + 1 < len(starts) else len(text))] for k, s in enumerate(starts)]
    masked_parts = [masked[s : (starts[k + 1] - 1 if k + 1 < len(starts) else len(masked))] for k, s in enumerate(starts)]

    registry: str | None = None
    if len(parts) > 1:
        first = masked_parts[0]
        has_registry = True
        if _MASK in first:
            registry = parts[0]
        elif "." in first or ":" in first or first.lower() == "localhost":
            registry = parts[0].lower()
            if not _REGISTRY.fullmatch(registry):
                return None
            if registry in _HUB_REGISTRIES:
                registry = None
        else:
            has_registry = False
        if has_registry:
            parts, masked_parts = parts[1:], masked_parts[1:]

    repo_parts = [p.lower() for p in parts]
    if not repo_parts or any(_MASK in m for m in masked_parts):
        return None
    if not all(_PATH_COMPONENT.fullmatch(p) for p in repo_parts):
        return None
    if len(repo_parts) > 1 and repo_parts[0] == "library":
        repo_parts = repo_parts[1:]
    return ImageRef(registry=registry, repository="/".join(repo_parts), tag=tag, digest=digest)
