"""Planning: every service of a document through the passes, in order, against a model that
already holds the changes planned for the services before it. Pure: no text is written here."""


from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from . import data, document, findings, inherit, swarm
from .model import Change, Finding, HardenError, Project, Skip
from .passes import CONTROLS, PASSES
from .passes.resources import form_of
from .profile import Profile, resolve
from .view import ServiceView
from .admit import _admit
from .compose_rules import _compose_accepts
from .merge_tags import _mark_tags, _tag_findings


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


# A `%YAML` / `%TAG` directive line: the document splitter takes it for content and the
# round-trip loader then meets a document of a directive alone. It is read as a comment
# (same line, same position) and written back as it was.

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
    resolved = data.compose(current)  # as Compose reads this file: a `!reset` key is gone
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
    return [s for s in planned if isinstance(s, Skip)] + [Skip(hardening.ID, view.name, reason, line=view.line)]


def plan_document(doc: document.Document, profile: Profile, skip: frozenset[str], plan: Plan, project: Project = Project()) -> None:
    """Plan every service against a model that already holds the changes planned for
    the services before it: anchored services pass them on to `<<:` users, and a service
    that `extends` another sees what its base will hold."""
    tree = document.services(doc)
    if tree is None:
        return
    plan.compose_documents += 1
    root = plan.models[doc.index] = document.model(doc.tree)
    model = data.services(root) or data.MapNode()
    _mark_tags(tree, model)
    shared = data.references(root)
    forms = [form_of(data.resolve(s)) for s in model.own.values() if isinstance(s, data.MapNode)]
    plain_root = data.resolve(root)
    context = {
        "file_form": "deploy" if "deploy" in forms and "short" not in forms else "short" if "short" in forms else None,
        "target": "swarm" if swarm.is_stack(plain_root) else "compose",
        "stack_pids": swarm.takes_pids(plain_root),
    }
    for name in inherit.file_order(document.service_names(doc), model):
        if model.tags.get(name) == data.RESET_TAG:  # `name: !reset ...`: Compose drops the service
            line, _ = document.value_position(tree, name, doc.first_line)
            reason = "!reset removes this service from the project; nothing to harden here"
            plan.skips += [Skip(c, str(name), reason, line=line, document=doc.index) for c in CONTROLS]
            plan.services += 1
            continue
        _compose_accepts(doc, tree, name, model, project)
        view = _view(doc, name, model, context)
        plan.services += 1
        written = view
        current = model.lookup(name)[1]
        marked = data.compose(current, marks=True)
        replaced = model.tags.get(name) == data.OVERRIDE_TAG  # `name: !override {...}`: nothing of the files before it stays
        base = inherit.external_base(view, project) if not replaced else None
        before = base
        if base is not None:
            if view.name in project.merged:
                plan.findings += inherit.weakening(view.name, dict(view.data), view.line)
            merged = inherit.merge(base, marked if isinstance(marked, dict) else {})
            view = replace(view, data=merged, extended=frozenset(merged) - frozenset(view.data))
        elif not any(k in view.data for k in ("image", "build", "extends")):
            reason = "no image, build or extends: a fragment of a service defined in another file; harden that file"
            plan.skips += [Skip(c, view.name, reason, line=view.line, document=doc.index) for c in CONTROLS]
            continue
        elif inherit.local_base(view.data) is not None:
            before = inherit.effective(inherit.local_base(view.data), model)
            effective = inherit.effective(name, model)
            view = replace(view, data=effective, extended=frozenset(effective) - frozenset(view.data))
        image = view.data.get("image")
        settings = resolve(profile, view, skip, project.images.get(image) if isinstance(image, str) else None,
                           project.observed.get(view.name))
        if settings.image:
            plan.matches.append((view.name, settings.image))
        # a risk the files before this one already hold is theirs: reported against them, not again here
        inherited = inherit.clean(project.merged.get(view.name)) if base is not None else None
        known = {(f.kind, f.message) for f in findings.scan(replace(view, data=inherited), settings)} if isinstance(inherited, dict) else set()
        plan.findings += [replace(f, document=doc.index) for f in findings.scan(view, settings) if (f.kind, f.message) not in known]
        for hardening in PASSES:
            reason = settings.skip.get(hardening.ID) or _signal(view, hardening.ID)
            if reason:
                plan.skips.append(Skip(hardening.ID, view.name, reason, line=view.line, document=doc.index))
                continue
            planned = _unverified(hardening, view, profile, settings, hardening.plan(view, settings))
            planned = _admit(planned, hardening.ID, view, root, doc.tree, shared)
            new = [replace(c, document=doc.index) for c in planned if isinstance(c, Change)]
            plan.skips += [replace(s, document=doc.index) for s in planned if isinstance(s, Skip)]
            plan.changes += new
            view = view.with_changes(new)
            for change in new:
                copies = any(shared.get(id(t), 0) > 1 for t in data.targets(root, change))
                try:
                    data.apply(root, change, shared)
                except HardenError as exc:
                    exc.line = exc.line or change.line
                    raise
                if copies:  # a value was copied: what refers to what has changed
                    shared = data.references(root)
        plan.findings += [replace(f, document=doc.index) for f in _tag_findings(view, written, current, before)]



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
            marked = data.compose(section, marks=True)  # `!reset` / `!override` kept for the files merged after it
            for name, value in marked.items():
                earlier = out.get(name)
                out[name] = inherit.merge(earlier, value) if isinstance(earlier, dict) and isinstance(value, dict) else value
    return out
