"""The pure core: Compose text + profile in, `Result` out. No I/O, no printing.

parse → plan every service through the passes in order → apply the changes to the tree →
render them as a minimal patch onto the original text → safety net. Any failure becomes
an error `Result`; nothing half-done leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from . import data, document, findings, inherit, safety, swarm
from .rewrite import rewrite
from .model import Change, Failure, Finding, HardenError, InputError, Project, RefusedError, Result, Skip, Status
from .passes import CONTROLS, PASSES
from .passes.resources import form_of
from .profile import Profile, resolve
from .view import ServiceView


@dataclass
class Plan:
    """Everything planned for one file."""

    changes: list[Change] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    matches: list[tuple[str, str]] = field(default_factory=list)
    services: int = 0
    compose_documents: int = 0
    models: dict[int, data.MapNode] = field(default_factory=dict)  # document -> planned data


def _looks_v1(tree: Any) -> bool:
    return (
        isinstance(tree, dict)
        and bool(tree)
        and all(isinstance(v, dict) and ("image" in v or "build" in v) for k, v in tree.items() if not str(k).startswith("x-"))
    )


def _view(doc: document.Document, name: Any, model: data.MapNode, context: dict[str, Any]) -> ServiceView:
    where = document.layout(doc, name)
    current = model.lookup(name)[1]
    own = frozenset(str(k) for k in current.own) if isinstance(current, data.MapNode) else frozenset()
    resolved = data.resolve(current)
    return ServiceView(
        name=str(name),
        data=resolved if isinstance(resolved, dict) else {},
        own=own,
        lines=where.keys,
        line=where.line,
        document=doc.index,
        config=where.config,
        **context,
        signals=where.signals,
    )


# x-harden keys that set a control's value: the file then overrides its author's comment.
_SETS = {"user": ("user",), "read_only": ("tmpfs",), "capabilities": ("cap_add",), "resources": ("memory", "cpus", "pids")}


def _signal(view: ServiceView, control: str) -> str | None:
    """The author's comment against `control`, unless x-harden sets that control."""
    reason = view.signals.get(control)
    block = view.data.get("x-harden")
    if reason and isinstance(block, dict) and any(k in block for k in _SETS.get(control, ())):
        return None
    return reason


def _unverified(hardening: Any, view: ServiceView, profile: Profile, settings: Any, planned: list[Change | Skip]) -> list[Change | Skip]:
    """With `unverified: review`, a control whose every change rests on the profile default
    alone (and that can stop a service) is left out and reported for review instead.
    `auto` (the default) reviews where facts were read from the service's image, and
    applies where nothing could be read (no engine, no registry: the profile as before)."""
    changes = [c for c in planned if isinstance(c, Change)]
    mode = profile.data.get("unverified", "auto")
    review = mode == "review" or (mode == "auto" and settings.facts is not None)
    if not review or not getattr(hardening, "REVIEW", False):
        return planned
    if not changes or not all(c.unverified for c in changes):
        return planned
    wanted = "; ".join(c.describe() for c in changes)
    reason = f"needs review: {wanted} would rest on the profile default alone (unverified); confirm it with x-harden or the image"
    return [s for s in planned if isinstance(s, Skip)] + [Skip(hardening.ID, view.name, reason, view.line)]


def plan_document(doc: document.Document, profile: Profile, skip: frozenset[str], plan: Plan, project: Project = Project()) -> None:
    """Plan every service against a model that already holds the changes planned for
    the services before it: anchored services pass them on to `<<:` users, and a service
    that `extends` another sees what its base will hold."""
    if document.services(doc) is None:
        return
    plan.compose_documents += 1
    root = plan.models[doc.index] = document.model(doc.tree)
    model = data.services(root) or data.MapNode()
    forms = [form_of(data.resolve(s)) for s in model.own.values() if isinstance(s, data.MapNode)]
    plain_root = data.resolve(root)
    context = {
        "file_form": "deploy" if "deploy" in forms and "short" not in forms else "short" if "short" in forms else None,
        "target": "swarm" if swarm.is_stack(plain_root) else "compose",
        "stack_pids": swarm.takes_pids(plain_root),
    }
    for name in inherit.file_order(document.service_names(doc), model):
        view = _view(doc, name, model, context)
        plan.services += 1
        base = inherit.external_base(view, project)
        if base is not None:
            if view.name in project.merged:
                plan.findings += inherit.weakening(view.name, dict(view.data), view.line)
            merged = inherit.merge(base, dict(view.data))
            view = replace(view, data=merged, extended=frozenset(merged) - frozenset(view.data))
        elif not any(k in view.data for k in ("image", "build", "extends")):
            reason = "no image, build or extends: a fragment of a service defined in another file; harden that file"
            plan.skips += [Skip(c, view.name, reason, view.line, doc.index) for c in CONTROLS]
            continue
        elif inherit.local_base(view.data) is not None:
            effective = inherit.effective(name, model)
            view = replace(view, data=effective, extended=frozenset(effective) - frozenset(view.data))
        image = view.data.get("image")
        settings = resolve(profile, view, skip, project.images.get(image) if isinstance(image, str) else None)
        if settings.image:
            plan.matches.append((view.name, settings.image))
        plan.findings += [replace(f, document=doc.index) for f in findings.scan(view, settings)]
        for hardening in PASSES:
            reason = settings.skip.get(hardening.ID) or _signal(view, hardening.ID)
            if reason:
                plan.skips.append(Skip(hardening.ID, view.name, reason, view.line, doc.index))
                continue
            planned = _unverified(hardening, view, profile, settings, hardening.plan(view, settings))
            new = [replace(c, document=doc.index) for c in planned if isinstance(c, Change)]
            plan.skips += [replace(s, document=doc.index) for s in planned if isinstance(s, Skip)]
            plan.changes += new
            view = view.with_changes(new)
            for change in new:
                data.apply(root, change)


def plan_text(documents: list[document.Document], profile: Profile, skip: frozenset[str] = frozenset(), project: Project = Project()) -> Plan:
    plan = Plan()
    for doc in documents:
        plan_document(doc, profile, skip, plan, project)
    return plan


def planned_services(plan: Plan) -> dict[str, Any]:
    """Every service of the file as it will be once hardened (later documents win)."""
    out: dict[str, Any] = {}
    for root in plan.models.values():
        section = data.services(root)
        if section is not None:
            resolved = data.resolve(section)
            for name, value in resolved.items():
                out[name] = inherit.merge(out.get(name, {}), value) if isinstance(value, dict) else value
    return out


def harden_text(text: str, profile: Profile, skip: frozenset[str] = frozenset(), project: Project = Project()) -> Result:
    """Harden one Compose text. Never raises for bad input: see `Result.status`.

    `project` carries what other files of the same Compose project contribute, so that a
    change is made once for the merged project (see `files.process_project`)."""
    try:
        return _harden(text, profile, skip, project)
    except HardenError as exc:
        return failed(text, exc)
    except RecursionError:
        return Result(Status.ERROR, text, text, message="nesting too deep to be a Compose file", failure=Failure.INPUT)
    except Exception as exc:  # a bug costs this text, never the run: reported, nothing written
        return Result(Status.ERROR, text, text, message=f"internal error, file left untouched: {type(exc).__name__}: {exc}",
                      failure=Failure.INTERNAL)


def failed(text: str, exc: HardenError) -> Result:
    """The error result for `exc`: refused output, else bad input."""
    failure = Failure.REFUSED if isinstance(exc, RefusedError) else Failure.INPUT
    return Result(Status.ERROR, text, text, message=exc.message, line=exc.line, col=exc.col, failure=failure)


def _harden(text: str, profile: Profile, skip: frozenset[str], project: Project) -> Result:
    if not text.lstrip("\ufeff").strip():
        raise InputError("empty file; not a Compose file")
    facts, documents = document.parse(text)
    if all(doc.tree is None for doc in documents):
        raise InputError("only comments, no YAML content; not a Compose file")
    plan = plan_text(documents, profile, skip, project)
    if plan.compose_documents == 0:
        if any(_looks_v1(doc.tree) for doc in documents):
            return Result(Status.SKIPPED, text, text, message="Compose v1 format (no services: key); convert it to the Compose specification first")
        return Result(Status.SKIPPED, text, text, message="no services: key; not a Compose project file")
    output = text
    if plan.changes:
        # Taken before the edit changes the trees: what the safety net compares against.
        before = [document.plain(doc.tree) for doc in documents]
        intended = [data.resolve(plan.models[d.index]) if d.index in plan.models else before[d.index] for d in documents]
        pieces = []
        for doc in documents:
            mine = [c for c in plan.changes if c.document == doc.index]
            if not mine:
                pieces.append(doc.text)
                continue
            pieces.append(rewrite(doc, mine, unterminated=not facts.final_newline and doc is documents[-1]))
        output = document.join_facts(facts, "".join(pieces))
        safety.check(before, intended, output, lambda: plan_text(documents, profile, skip, project).changes, original=text)
    return Result(
        Status.CHANGED if output != text else Status.UNCHANGED,
        text,
        output,
        tuple(plan.changes),
        tuple(plan.skips),
        tuple(plan.findings),
        tuple(plan.matches),
        services=plan.services,
        planned=planned_services(plan),
    )
