"""Facts from the local Docker engine, through the `docker` CLI, without running the image.

`docker image inspect` gives the config and the digest (the image Id). The files are read
from a container that is created and never started (`docker create --pull never`): each
wanted path is copied out as a tar stream (`docker cp CONTAINER:PATH -`), of which only the
first entry is read (its header for owners; its bytes for passwd, group, the script),
then the copy is stopped. The container is always removed, with its anonymous volumes.
Every subprocess runs under the look-up's deadline; nothing here ever pulls.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import subprocess
import tarfile
import threading
from dataclasses import replace
from typing import Any, Callable

from .deadline import Deadline
from .gather import from_config, with_files
from .model import ImageFacts, Owner

_MAX_LINKS = 8
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

    def _first(self, path: str, limit: int | None) -> tuple[tarfile.TarInfo, bytes | None] | None:
        """The first tar entry `docker cp` gives for `path` (and its bytes, when a regular
        file of at most `limit` bytes is asked for); the copy is stopped after it."""
        try:
            proc = subprocess.Popen(["docker", "cp", f"{self.container}:{path}", "-"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise EngineUnavailable(f"docker cp failed to start: {exc}") from None
        timer = threading.Timer(self.deadline.left(), proc.kill)
        timer.start()
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                member = tar.next()
                if member is None:
                    return None
                data = None
                if limit is not None and member.isreg() and member.size <= limit:
                    stream = tar.extractfile(member)
                    data = stream.read() if stream is not None else None
                return member, data
        except (tarfile.TarError, OSError):
            return None  # no such path (empty stream), or killed at the deadline
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def _follow(self, path: str, limit: int | None) -> tuple[tarfile.TarInfo, bytes | None] | None:
        for _ in range(_MAX_LINKS):
            found = self._first(path, limit)
            if found is None or not found[0].issym():
                return found
            target = found[0].linkname
            path = posixpath.normpath(target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target))
        return None

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
