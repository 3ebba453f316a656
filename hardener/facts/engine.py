"""Facts from the local Docker engine, through the `docker` CLI, without running the image.

`docker image inspect` gives the config and the digest (the image Id). The files are read
from a container that is created and never started (`docker create --pull never`): each
wanted path is copied out as a tar stream (`docker cp CONTAINER:PATH -`), of which only the
first entry is read (its header for owners and, from its pax records, the extended
attributes that hold file capabilities; its bytes for passwd, group, the script), then
the copy is stopped. A directory whose scripts the entrypoint runs is copied as one tar,
read up to a bound. The container is always removed, with its anonymous volumes.
Every subprocess runs under the look-up's deadline; nothing here ever pulls.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import secrets
import subprocess
import tarfile
import threading
from dataclasses import replace
from typing import IO, Any, Callable, Iterator

from . import caps
from .deadline import Deadline
from .gather import from_config, with_files
from .model import ImageFacts, Owner

_MAX_LINKS = 8
_MAX_LISTED = 4096  # tar entries read from a directory's copy
_NEVER_RUN = "/harden-facts-never-started"


class EngineUnavailable(Exception):
    """No engine to ask (no CLI, daemon down, permission denied, too slow)."""


def _docker(args: list[str], deadline: Deadline) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=deadline.left(),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EngineUnavailable("docker CLI not found on PATH") from None
    except (subprocess.TimeoutExpired, TimeoutError) as exc:
        raise EngineUnavailable(f"docker {args[0]} did not answer in time ({exc})") from None
    except OSError as exc:
        raise EngineUnavailable(f"docker CLI failed to start: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def inspect(reference: str, deadline: Deadline) -> dict[str, Any] | None:
    """`docker image inspect` of a local image; None when the engine does not have it."""
    done = _docker(["image", "inspect", "--format", "{{json .}}", reference], deadline)
    if done.returncode != 0:
        if "no such image" in done.stderr.lower() or "no such object" in done.stderr.lower():
            return None
        raise EngineUnavailable(f"docker image inspect failed: {_last_line(done.stderr or done.stdout)}")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise EngineUnavailable("docker image inspect printed no JSON") from None
    return data if isinstance(data, dict) and isinstance(data.get("Id"), str) else None


class ContainerFiles:
    """The files of a created (not started) container, read with `docker cp`."""

    def __init__(self, container: str, deadline: Deadline) -> None:
        self.container = container
        self.deadline = deadline
        self._absent: set[str] = set()  # paths `docker cp` found nothing at

    @contextlib.contextmanager
    def _copy(self, path: str) -> Iterator[IO[bytes]]:
        """The tar stream of `docker cp CONTAINER:PATH -`, killed at the deadline and when
        the reader is done with it."""
        try:
            proc = subprocess.Popen(["docker", "cp", f"{self.container}:{path}", "-"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise EngineUnavailable(f"docker cp failed to start: {exc}") from None
        timer = None
        try:
            timer = threading.Timer(self.deadline.left(), proc.kill)
            timer.start()
            assert proc.stdout is not None
            yield proc.stdout
        finally:
            if timer is not None:
                timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def _first(self, path: str, limit: int | None) -> tuple[tarfile.TarInfo, bytes | None] | None:
        """The first tar entry `docker cp` gives for `path` (and its bytes, when a regular
        file of at most `limit` bytes is asked for); the copy is stopped after it."""
        if path in self._absent:
            return None
        with self._copy(path) as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as tar:
                    member = tar.next()
                    if member is None:
                        self._absent.add(path)
                        return None
                    data = None
                    if limit is not None and member.isreg() and member.size <= limit:
                        extracted = tar.extractfile(member)
                        data = extracted.read() if extracted is not None else None
                    return member, data
            except (tarfile.TarError, OSError):
                self._absent.add(path)
                return None  # no such path (empty stream), or killed at the deadline

    def _resolve(self, path: str, limit: int | None) -> tuple[str, tarfile.TarInfo, bytes | None] | None:
        """(path with its last symlinks followed, its first entry, its bytes)."""
        for _ in range(_MAX_LINKS):
            found = self._first(path, limit)
            if found is None:
                return None
            if not found[0].issym():
                return path, found[0], found[1]
            target = found[0].linkname
            path = posixpath.normpath(target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target))
        return None

    def _follow(self, path: str, limit: int | None) -> tuple[tarfile.TarInfo, bytes | None] | None:
        found = self._resolve(path, limit)
        return (found[1], found[2]) if found else None

    def xattrs(self, path: str) -> dict[str, bytes] | None:
        """Extended attributes of the regular file at `path` (symlinks followed), from the
        pax records of its copy; None when there is no regular file there."""
        found = self._follow(path, None)
        return caps.xattrs(found[0].pax_headers) if found and found[0].isreg() else None

    def files_below(self, directory: str, match: Callable[[str], bool], limit: int, count: int
                    ) -> tuple[list[tuple[str, bytes | None]], bool] | None:
        """(files, more): the regular files below `directory` whose relative path
        `match`es, by path, at most `count`, with their bytes (None over `limit`); read
        from one copy of the directory (at most _MAX_LISTED entries), symlinked files
        followed afterwards. None when `directory` is not a directory."""
        found = self._resolve(posixpath.normpath(directory), None)
        if found is None or not found[1].isdir():
            return None
        real = found[0]
        chosen: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
        with self._copy(real) as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as tar:
                    for seen, member in enumerate(tar):
                        if seen >= _MAX_LISTED:
                            break
                        relative = member.name.partition("/")[2].strip("/")
                        if not relative or not (member.isreg() or member.issym()) or not match(relative):
                            continue
                        data = None
                        if member.isreg() and member.size <= limit:
                            extracted = tar.extractfile(member)
                            data = extracted.read() if extracted is not None else None
                        chosen.append((relative, member, data))
                        if len(chosen) > count + 1:  # keep the first by name only
                            chosen.sort(key=lambda c: c[0])
                            chosen.pop()
            except (tarfile.TarError, OSError):
                pass  # killed at the deadline: what was read so far
        chosen.sort(key=lambda c: c[0])
        files: list[tuple[str, bytes | None]] = []
        for relative, member, data in chosen:
            path = posixpath.join(posixpath.normpath(directory), relative)
            if member.issym():
                target = member.linkname
                target = target if target.startswith("/") else posixpath.join(real, posixpath.dirname(relative), target)
                linked = self._follow(posixpath.normpath(target), limit)
                if linked is None or not linked[0].isreg():
                    continue
                data = linked[1]
            files.append((path, data))
        return files[:count], len(files) > count

    def read(self, path: str, limit: int) -> bytes | None:
        found = self._follow(path, limit)
        return found[1] if found else None

    def stat(self, path: str) -> Owner | None:
        found = self._follow(path, None)
        return (found[0].uid, found[0].gid, found[0].mode & 0o7777) if found else None


def read_engine(reference: str, deadline: Deadline,
                known: Callable[[str], ImageFacts | None] = lambda digest: None) -> ImageFacts | None:
    """Facts of the local image `reference`, None when the engine does not have it.
    `known(digest)` may answer from a cache once the digest is known. Raises
    EngineUnavailable when there is no engine to ask."""
    data = inspect(reference, deadline)
    if data is None:
        return None
    digest = data["Id"]
    cached = known(digest)
    if cached is not None:
        return cached
    platform = "/".join(p for p in (data.get("Os"), data.get("Architecture"), data.get("Variant")) if p)
    facts = from_config(reference, digest, "engine", data.get("Config"), platform)
    name = "harden-facts-" + secrets.token_hex(6)
    created = _docker(["create", "--pull", "never", "--name", name, "--network", "none", "--label", "org.harden.facts=1",
                       "--entrypoint", _NEVER_RUN, digest], deadline)
    if created.returncode != 0:
        return replace_notes(facts, f"files not read: docker create failed: {_last_line(created.stderr)}")
    container = created.stdout.strip() or name
    try:
        return with_files(facts, ContainerFiles(container, deadline))
    except (TimeoutError, EngineUnavailable) as exc:
        return replace_notes(facts, f"files not read: {exc}")
    finally:
        try:
            subprocess.run(["docker", "rm", "--force", "--volumes", container], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            pass


def replace_notes(facts: ImageFacts, note: str) -> ImageFacts:
    return replace(facts, notes=(*facts.notes, note))
