"""The one way in: `facts_for(image)` / `lookup(image)`.

Order: the cache (reference -> digest -> facts), then the local engine (only an image it
already has; never a pull), then the image's registry (unless `offline`). `lookup`
returns a `Lookup` (facts, or None and the reason, one line); `facts_for` returns just the
facts or None. Neither raises because an engine, a registry or the network is missing or
slow: that is the reason. A reference with `${VAR:-default}` is looked up with its
defaults (`with_defaults`, the project's reading of Compose values) and the facts say so
(`resolved_reference`, a note); one with a variable without a default is not looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..images import parse_image
from ..values import is_variable, with_defaults
from .cache import FactsCache
from .deadline import Deadline
from .engine import EngineUnavailable, read_engine
from .model import ImageFacts

DEFAULT_TIMEOUT = 30.0
DEFAULT_LAYER_CAP = 64 << 20  # compressed bytes of a registry image's layers read for its files
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_WITH_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-[^}]*\}")


@dataclass(frozen=True)
class Lookup:
    """Facts, or None and why (`reason`: one line naming each source tried)."""

    facts: ImageFacts | None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.facts is not None


def resolve_reference(image: str) -> tuple[str | None, str]:
    """(reference to look up, reason it cannot be) for an `image:` value as written."""
    if not isinstance(image, str) or not image.strip():
        return None, "no image reference"
    text = image.strip()
    if is_variable(text):
        for variable in _VARIABLE.findall(text.replace("$$", "")):
            if not _WITH_DEFAULT.fullmatch(variable):
                return None, f"{variable} in {text!r} has no default: the image is chosen where it runs"
        text = with_defaults(text).strip()
    if parse_image(text) is None or "$" in text:
        return None, f"{text!r} is not an image reference that can be looked up"
    return text, ""


def lookup(image: str, *, engine: bool = True, registry: bool = True, offline: bool = False,
           cache_dir: Path | None = None, timeout: float = DEFAULT_TIMEOUT, layer_cap: int = DEFAULT_LAYER_CAP,
           refresh: bool = False, cache: bool = True, docker_config: Path | None = None,
           opener: Any = None) -> Lookup:
    """Facts about `image` (a Compose `image:` value as written).

    `engine` / `registry`: which sources may be asked; `offline`: no network (cache and
    engine only); `cache_dir`: the cache root (default under XDG_CACHE_HOME); `cache`:
    False neither reads nor writes it; `refresh`: ignore the reference -> digest map (facts
    by digest still serve); `timeout`: seconds for the whole look-up; `layer_cap`: the
    compressed size up to which a registry image's layers are read for its files;
    `docker_config`: the Docker client config with registry credentials (default
    `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`); `opener`: a urllib opener
    (proxies, tests)."""
    reference, why = resolve_reference(image)
    if reference is None:
        return Lookup(None, why)
    store = FactsCache(cache_dir) if cache else None
    note = (f"{image.strip()} read as {reference} (its variables' defaults)",) if reference != image.strip() else ()

    def done(facts: ImageFacts, *, cached: bool = False) -> Lookup:
        if store is not None and not cached:
            store.put(facts)
        if store is not None:
            store.remember(reference, facts.digest)
        facts = facts.with_reference(image, reference, from_cache=cached)
        return Lookup(replace(facts, notes=(*facts.notes, *note)))

    hits: set[str] = set()

    def known(digest: str) -> ImageFacts | None:
        """Facts by digest from the cache, once a source has named the digest."""
        found = store.get(digest) if store is not None else None
        if found is not None:
            hits.add(digest)
        return found

    if store is not None and not refresh:
        digest = store.digest_for(reference)
        hit = store.get(digest) if digest else None
        if hit is not None:
            return done(hit, cached=True)

    deadline = Deadline(timeout)
    reasons = []
    if engine:
        try:
            facts = read_engine(reference, deadline, known)
        except (EngineUnavailable, TimeoutError) as exc:
            reasons.append(f"engine: {exc}")
        else:
            if facts is not None:
                return done(facts, cached=facts.digest in hits)
            reasons.append("engine: no local image " + reference)
    if registry and not offline:
        from .registry import RegistryError, read_registry  # HTTP and TLS: loaded only to ask a registry

        try:
            facts = read_registry(reference, image, deadline, layer_cap=layer_cap, docker_config=docker_config,
                                  known=known, opener=opener)
        except (RegistryError, TimeoutError) as exc:
            reasons.append(f"registry: {exc}")
        else:
            return done(facts, cached=facts.digest in hits)
    elif registry:
        reasons.append("registry: not asked (offline)")
    return Lookup(None, "; ".join(reasons) or "no source allowed (engine=False, registry=False)")


def facts_for(image: str, *, engine: bool = True, registry: bool = True, offline: bool = False,
              cache_dir: Path | None = None, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> ImageFacts | None:
    """Facts about `image`, or None when no source could give them (`lookup` says why)."""
    return lookup(image, engine=engine, registry=registry, offline=offline, cache_dir=cache_dir, timeout=timeout,
                  **options).facts
