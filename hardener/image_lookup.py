"""Looking up facts for the images a Compose text names: the I/O side of image evidence.

Before a file is planned, each `image:` it names is looked up (`hardener.facts`): the
cache by digest, the local engine when the image is there (one `docker image ls` a
process tells which are), then its registry unless `--offline`. A registry host that
cannot be reached is not asked again in the same process. What is found goes into the
pure core as data (`Project.images`); an image nobody can describe simply has no facts
and its values rest on the knowledge base or the profile, as before.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import parse_image

_IMAGE_LINE = re.compile(r"""^\s*["']?image["']?\s*:\s*(.+?)\s*(?:\s#.*)?$""", re.MULTILINE)
_MAX_REMEMBERED = 512


@dataclass(frozen=True)
class FactsOptions:
    """How images are looked up: `enabled` False never looks; `offline` never touches the network."""

    enabled: bool = True
    offline: bool = False
    cache_dir: Path | None = None
    timeout: float = 10.0

    @classmethod
    def from_environment(cls, enabled: bool = True, offline: bool = False) -> "FactsOptions":
        offline = offline or os.environ.get("HARDEN_OFFLINE", "") not in ("", "0")
        return cls(enabled=enabled, offline=offline)


def _key(image: str) -> tuple[str, str, str] | None:
    ref = parse_image(image)
    if ref is None:
        return None
    return (ref.registry or "docker.io", ref.repository, ref.tag or "latest")


class Lookups:
    """The look-ups of one process: which images the engine has, unreachable registries,
    and what was found (bounded)."""

    def __init__(self, options: FactsOptions):
        self.options = options
        self._local: set[tuple[str, str, str]] | None = None
        self._down: set[str] = set()
        self._found: OrderedDict[str, Any] = OrderedDict()

    def _engine_images(self) -> set[tuple[str, str, str]]:
        if self._local is None:
            self._local = set()
            try:
                done = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                                      capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError):
                return self._local
            if done.returncode == 0:
                self._local = {k for line in done.stdout.splitlines() if (k := _key(line.strip())) is not None}
        return self._local

    def facts(self, image: str) -> Any:
        """Facts about `image` (as written), or None."""
        if image in self._found:
            self._found.move_to_end(image)
            return self._found[image]
        found = self._look(image)
        self._found[image] = found
        if len(self._found) > _MAX_REMEMBERED:
            self._found.popitem(last=False)
        return found

    def _look(self, image: str) -> Any:
        from .facts import lookup
        from .values import with_defaults

        key = _key(with_defaults(image) if "$" in image else image)
        if key is None:
            return None
        local = key in self._engine_images()
        remote = not self.options.offline and key[0] not in self._down and not local
        found = lookup(image, engine=local, registry=remote, offline=self.options.offline,
                       cache_dir=self.options.cache_dir, timeout=self.options.timeout)
        if found.facts is None and remote and "unreachable" in found.reason:
            self._down.add(key[0])
        return found.facts


_process: dict[FactsOptions, Lookups] = {}


def lookups(options: FactsOptions) -> Lookups:
    """This process's `Lookups` for `options` (one per option set; a run uses one)."""
    if options not in _process:
        _process.clear()  # bounded: only the current run's options are kept
        _process[options] = Lookups(options)
    return _process[options]


def images_in(text: str) -> list[str]:
    """The `image:` values a Compose text names (a line scan: cheap, and enough to choose
    what to look up; the core matches facts to services by the exact value)."""
    out = []
    for match in _IMAGE_LINE.finditer(text):
        value = match.group(1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value and not value.startswith(("*", "&", "[", "{")):
            out.append(value)
    return list(dict.fromkeys(out))


def facts_for_text(text: str, options: FactsOptions) -> dict[str, Any]:
    """`image:` as written -> facts, for every image of `text` something is known about."""
    if not options.enabled:
        return {}
    found = {}
    for image in images_in(text):
        facts = lookups(options).facts(image)
        if facts is not None:
            found[image] = facts
    return found
