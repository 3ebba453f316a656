"""Compose projects made of several files, hardened as one.

Compose merges `compose.yaml` with `compose.override.yaml` (and `docker-compose.yml` with
`docker-compose.<env>.yml` given as further `-f` files), and a service may `extends` one in
another file. Hardening each file alone puts the same `security_opt` entry in two files
that Compose merges, which it rejects. So the files of one directory are planned in merge
order: base first, then each override planned against what the files before it will
hold once hardened; an override adds only what is still missing, and one that loosens the
base (privileged, read_only: false, cap_add ALL, root) is reported. The merged result is
checked with the real loader (`docker-compose -f base -f override config`) before anything
is written. A file given without the files Compose merges with it (an override without
its base, a base without its `*.override.*`) is planned and checked with them as they are
on disk. Files named `*.compose.yaml` are separate stacks, hardened on their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from . import document, oracle
from .core import harden_text
from .inherit import merge
from .image_lookup import FactsOptions, facts_for_text
from .files import (FileOutcome, Keep, atomic_write, decode, error_result, loader_check, merged_includes, read_bytes, kept, refused,
                    remove_stale_temps, remove_stale_tempdirs, say)
from .model import Failure, HardenError, Project, Result, Status
from .passes import CONTROLS
from .profile import Profile, profile_for

BASES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
_OVERLAY = re.compile(r"^(docker-)?compose\.[^.]+\.ya?ml$")


def group(paths: list[str]) -> list[list[str]]:
    """Split paths into projects: per directory, the base file then its overrides; the
    files one `include:` entry merges (`path: [a, b]`) are one project, in that order."""
    groups = _by_directory(paths)
    given = {os.path.realpath(p): p for p in paths}
    for path in paths:
        for entry in merged_includes(path):
            members = [given[os.path.realpath(m)] for m in entry if os.path.realpath(m) in given]
            if len(members) < 2 or any(members == g for g in groups):
                continue
            groups = [rest for g in groups if (rest := [p for p in g if p not in members])] + [members]
    return groups


def _by_directory(paths: list[str]) -> list[list[str]]:
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        by_dir.setdefault(os.path.dirname(os.path.abspath(path)), []).append(path)
    groups: list[list[str]] = []
    for members in by_dir.values():
        names = {os.path.basename(p): p for p in members}
        base = next((names[b] for b in BASES if b in names), None)
        overlays = sorted((p for p in members if p != base and _OVERLAY.match(os.path.basename(p))),
                          key=lambda p: (".override." not in p, p))
        if base is not None:
            groups.append([base, *overlays])
            rest = [p for p in members if p != base and p not in overlays]
        else:
            rest = members
        groups += [[p] for p in rest]
    return groups


def _extends_targets(text: str, directory: str, profile: Profile, skip: frozenset[str]) -> dict[tuple[str, str], Any]:
    """Planned data of the services in other files that services here `extends`."""
    if "extends" not in text or "file" not in text:
        return {}
    try:
        _, documents = document.parse(text)
    except HardenError:
        return {}
    targets: dict[tuple[str, str], Any] = {}
    for doc in documents:
        services = doc.tree.get("services") if isinstance(doc.tree, dict) else None
        for name, service in (services or {}).items():
            ext = service.get("extends") if isinstance(service, dict) else None
            if not isinstance(ext, dict) or not isinstance(ext.get("file"), str):
                continue
            path = os.path.join(directory, ext["file"])
            try:
                other = harden_text(decode(read_bytes(path)), profile, skip)
            except HardenError:
                continue
            target = str(ext.get("service", name))
            if target in other.planned:
                targets[(ext["file"], target)] = other.planned[target]
    return targets


def _context(paths: list[str]) -> tuple[list[str], set[str]]:
    """The project in merge order, with the files Compose merges that were not given:
    the base of an override given alone, the `*.override.*` file beside a base given
    alone. Those are read as they are on disk, never changed or reported."""
    directory = os.path.dirname(os.path.abspath(paths[0]))
    names = [os.path.basename(p) for p in paths]
    on_disk = lambda candidates: [os.path.join(directory, c) for c in candidates if os.path.isfile(os.path.join(directory, c))]  # noqa: E731
    before: list[str] = []
    after: list[str] = []
    if names[0] not in BASES and _OVERLAY.match(names[0]):
        before = on_disk(BASES)[:1]
    elif names[0] in BASES:
        override = "docker-compose.override" if names[0].startswith("docker-") else "compose.override"
        after = [p for p in on_disk((f"{override}.yaml", f"{override}.yml")) if os.path.basename(p) not in names]
    return [*before, *paths, *after], set(before + after)


def process_project(paths: list[str], profile: Profile, skip: frozenset[str], write: bool, use_compose: bool = True,
                    facts: FactsOptions = FactsOptions(enabled=False)) -> list[FileOutcome]:
    """Harden the files of one project in merge order; write only if the whole project passes."""
    members, context = _context(paths)
    merged: dict[str, Any] = {}
    outcomes: list[tuple[str, bytes | None, Result]] = []
    for path in members:
        try:
            data = read_bytes(path)
            text = decode(data)
        except HardenError as exc:
            outcomes.append((path, None, error_result(exc.message)))
            continue
        directory = os.path.dirname(os.path.abspath(path))
        project = Project(dict(merged), _extends_targets(text, directory, profile, skip), facts_for_text(text, facts))
        as_is = skip | set(CONTROLS) if path in context else skip
        try:
            result = harden_text(text, profile, frozenset(as_is), project)
        except Exception as exc:  # a bug must cost one file, never the batch
            outcomes.append((path, None, error_result(f"internal error, file left untouched: {type(exc).__name__}: {exc}", failure=Failure.INTERNAL)))
            continue
        result = loader_check(result, directory, use_compose) if path not in context else result
        for name, value in result.planned.items():
            merged[name] = merge(merged[name], value) if isinstance(merged.get(name), dict) and isinstance(value, dict) else value
        outcomes.append((path, data, result))
    if use_compose and len(members) > 1 and any(r.status is Status.CHANGED for _, _, r in outcomes):
        reason = _merged_check(outcomes)
        if reason:
            outcomes = [(p, d, refused(r, reason) if r.status is Status.CHANGED else r)
                        for p, d, r in outcomes]
    done = []
    try:
        for path, data, result in outcomes:
            if path in context:
                continue
            if not write or result.status is not Status.CHANGED or data is None:
                done.append(FileOutcome(path, result))
                continue
            with _held_interrupt():  # a Ctrl-C takes effect once the file is written and recorded, or not written
                try:
                    atomic_write(path, result.text.encode("utf-8"), data)
                except HardenError as exc:
                    done.append(FileOutcome(path, refused(result, exc.message)))
                    continue
                done.append(FileOutcome(path, result, written=True))
                _journal(done[-1], profile.name)
    except KeyboardInterrupt:  # say which files of this project were written before it
        raise Interrupted([o.path for o in done if o.written]) from None
    return done


def _merged_check(outcomes: list[tuple[str, bytes | None, Result]]) -> str | None:
    """The merged project must load wherever the merged originals did."""
    readable = [(p, r) for p, d, r in outcomes if d is not None and r.status is not Status.ERROR]
    if len(readable) < 2:
        return None
    directory = os.path.dirname(os.path.abspath(readable[0][0]))
    before = oracle.config_files([(p, r.original) for p, r in readable], directory)
    if not before.ran:
        return oracle.not_run(before)
    if not before.ok:
        return None
    after = oracle.config_files([(p, r.text) for p, r in readable], directory)
    if not after.ran:
        return oracle.not_run(after)
    names = " + ".join(os.path.basename(p) for p, _ in readable)
    return None if after.ok else f"refused: Docker Compose rejects the merged project {names}: {after.error}"


def _run_group(args: tuple[list[str], Profile | None, frozenset[str], bool, bool, FactsOptions, Keep]) -> list[FileOutcome]:
    paths, profile, skip, write, use_compose, facts, keep = args
    if profile is None:  # the project's own .harden.yaml, else baseline
        try:
            profile = profile_for(os.path.dirname(os.path.abspath(paths[0])))
        except HardenError as exc:
            return [FileOutcome(p, error_result(exc.message)) for p in paths]
    outcomes = process_project(paths, profile, skip, write, use_compose, facts)
    return [kept(FileOutcome(o.path, o.result, o.written, profile.name), keep) for o in outcomes]


def process_paths(paths: list[str], profile: Profile | None, skip: frozenset[str], write: bool, jobs: int = 1, use_compose: bool = True,
                  facts: FactsOptions = FactsOptions(enabled=False), keep: Keep = Keep.ALL,
                  emit: Callable[[FileOutcome], FileOutcome] | None = None) -> list[FileOutcome]:
    """Every path, grouped into projects; one bad file never stops the others. Without a
    `profile`, each project takes its nearest `.harden.yaml` (`profile.project_profile_ref`).
    Each outcome is cut down to what `keep` keeps as soon as its project is done (in the
    worker), and handed to `emit` in the order of `paths` as soon as the ones before it
    are done; what `emit` returns is what the run keeps of it. So a run's memory does not
    grow with the texts (or diffs) of every file."""
    work = [(g, profile, skip, write, use_compose, facts, keep) for g in group(paths)]
    in_order = _InOrder(paths, emit)
    if write:
        for leftover in remove_stale_temps(paths):
            say(f"removed {leftover}: a temp file an interrupted run left behind")
    remove_stale_tempdirs()
    if use_compose:
        oracle.announce()  # once, before any worker starts
    if jobs <= 1 or len(work) < 8:  # a pool costs more than it saves on a few files
        overlap = use_compose and len(work) > 1 and oracle.compose_binary()
        if overlap:
            _pooled(work, OVERLAP, paths, in_order, _run_group, threads=True)
        else:
            _in_turn(work, in_order, _run_group)
    else:
        _pooled(work, jobs, paths, in_order, _run_group)
    return in_order.finish()


# Running the groups (in turn, in threads, in worker processes), handing outcomes on in
# order, and what Ctrl-C or a dead worker leaves: `workers`.
from .workers import OVERLAP, Interrupted, _held_interrupt, _in_turn, _InOrder, _journal, _pooled  # noqa: E402
