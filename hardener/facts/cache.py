"""Facts on disk, by config digest, plus a short-lived map from references to digests.

Layout under the root (`$XDG_CACHE_HOME/harden/facts`, default `~/.cache/harden/facts`):

* `sha256-<hex>.json`: one `ImageFacts.to_dict()` per image digest. A digest names its
  content, so these never expire; beyond `max_entries` the least recently used go.
* `refs.json`: reference as looked up -> {digest, at}. Tags move, so an entry is trusted
  for `ref_ttl` seconds (default one day); a reference pinned by `@sha256:` for ever.

Every write is atomic (a temporary file in the same directory, then rename). A file that
does not read back as a record is ignored (and removed), so the next look-up rewrites it.
Only `ImageFacts` go in: no credentials, tokens or headers. The cache is best effort: a
directory that cannot be written just means nothing is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .model import ImageFacts

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

VERSION = 2  # 2: file capabilities, the program, scripts run from a directory
DEFAULT_TTL = 24 * 3600.0
DEFAULT_MAX_ENTRIES = 512
_DIGEST = re.compile(r"^([a-z0-9]+):([a-f0-9]{32,128})$")


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and os.path.isabs(base) else Path.home() / ".cache") / "harden" / "facts"


class FactsCache:
    def __init__(self, root: Path | None = None, *, ref_ttl: float = DEFAULT_TTL,
                 max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.ref_ttl, self.max_entries, self.clock = ref_ttl, max_entries, clock

    def _file(self, digest: str) -> Path | None:
        match = _DIGEST.match(digest or "")
        return self.root / f"{match.group(1)}-{match.group(2)}.json" if match else None

    # --- facts by digest -----------------------------------------------------------------

    def get(self, digest: str) -> ImageFacts | None:
        path = self._file(digest)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != VERSION:
                raise ValueError("old format")
            facts = ImageFacts.from_dict(data["facts"])
            if facts.digest != digest:
                raise ValueError("digest mismatch")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return facts

    def put(self, facts: ImageFacts) -> None:
        path = self._file(facts.digest)
        if path is None:
            return
        self._write(path, {"version": VERSION, "facts": facts.to_dict()})
        self._prune()

    def _prune(self) -> None:
        try:
            files = [p for p in self.root.glob("*-*.json") if _DIGEST.match(p.stem.replace("-", ":", 1))]
            if len(files) <= self.max_entries:
                return
            files.sort(key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        for path in files[: len(files) - self.max_entries]:
            with contextlib.suppress(OSError):
                path.unlink()

    # --- references -> digests -----------------------------------------------------------

    def _refs(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "refs.json").read_text(encoding="utf-8"))
            refs = data["refs"] if data.get("version") == VERSION else {}
            return {k: v for k, v in refs.items() if isinstance(v, dict) and isinstance(v.get("digest"), str)
                    and isinstance(v.get("at"), (int, float))}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def _fresh(self, reference: str, entry: dict[str, Any], now: float) -> bool:
        return "@" in reference or 0 <= now - entry["at"] <= self.ref_ttl

    def digest_for(self, reference: str) -> str | None:
        entry = self._refs().get(reference)
        return entry["digest"] if entry and self._fresh(reference, entry, self.clock()) else None

    def remember(self, reference: str, digest: str) -> None:
        with self._locked():
            now = self.clock()
            refs = {k: v for k, v in self._refs().items() if self._fresh(k, v, now)}
            refs[reference] = {"digest": digest, "at": now}
            if len(refs) > 4 * self.max_entries:
                refs = dict(sorted(refs.items(), key=lambda kv: kv[1]["at"])[-4 * self.max_entries :])
            self._write(self.root / "refs.json", {"version": VERSION, "refs": refs})

    # --- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        handle = None
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle = open(self.root / ".lock", "a")
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            yield
        finally:
            if handle is not None:
                handle.close()

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, sort_keys=True)
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
