"""The pure core: Compose text + profile in, `Result` out. No I/O, no printing.

parse → plan every service through the passes in order → apply the changes to the tree →
render them as a minimal patch onto the original text → safety net. Any failure becomes
an error `Result`; nothing half-done leaves this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from . import data, document, findings, inherit, safety, swarm
from .rewrite import rewrite
from .rewrite.edit import flow_append, written_here
from .model import Change, Failure, Finding, HardenError, InputError, Op, Project, RefusedError, Result, Skip, Status
from .passes import CONTROLS, PASSES
from .passes.resources import form_of
from .profile import Profile, resolve
from .values import as_list, is_variable
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


# A `%YAML` / `%TAG` directive line: the document splitter takes it for content and the
# round-trip loader then meets a document of a directive alone. It is read as a comment
# (same line, same position) and written back as it was.
_DIRECTIVE = re.compile(r"^%(?=[A-Za-z])", re.M)
_MASK = "#\ue000"


def _mask_directives(text: str) -> str:
    return _DIRECTIVE.sub(_MASK, text) if "%" in text and _MASK not in text else text


def _unmask_directives(text: str) -> str:
    return re.sub(r"^" + re.escape(_MASK), "%", text, flags=re.M) if _MASK in text else text


def _fresh(doc: document.Document, text: str | None = None) -> document.Document:
    text = doc.text if text is None else text
    return document.Document(doc.index, doc.first_line, text, document.load_tree(text, doc.indent, doc.first_line), doc.indent)


def _through_flow_text(doc: document.Document, changes: list[Change], unterminated: bool) -> tuple[str, document.Document] | None:
    """The document rewritten when the patcher cannot follow it: the items added to a flow
    list the service writes itself are appended in the text (`edit.flow_append`: a flow
    list over several lines with a comment inside cannot be aligned with a dump, which
    drops such comments), then the other changes are made as usual on the text read again.
    None where no change is of that kind, or that does not work either."""
    try:
        fresh = _fresh(doc)
        section = document.services(fresh)
        flows = []
        for change in changes:
            service = section.get(change.service) if section is not None else None
            value = service.get(change.path[0]) if change.op is Op.ADD and isinstance(service, dict) else None
            if value is not None and getattr(getattr(value, "fa", None), "flow_style", lambda: False)():
                flows.append(((value.lc.line, value.lc.col), change, service))
        if not flows:
            return None
        text = fresh.text
        for _, change, service in sorted(flows, key=lambda f: f[0], reverse=True):  # the last first: positions before it hold
            appended = flow_append(text, service, change.path[0], [*change.new])
            if appended is None:
                return None
            text = appended
        rest = [c for c in changes if all(c is not f[1] for f in flows)]
        after = _fresh(doc, text)
        return (rewrite(after, rest, unterminated=unterminated) if rest else text), after
    except HardenError:
        return None


def _placed(exc: HardenError, doc: document.Document, changes: list[Change], unterminated: bool) -> HardenError:
    """`exc` from editing `doc`, at the line:column of the file: a position the edit gave is
    within the document; without one, the change that cannot be made alone is found and its
    key (or its service) is the place."""
    if exc.line is not None:
        exc.line += doc.first_line
        return exc
    try:
        unedited = _fresh(doc)  # `doc`'s tree holds the failed edit
    except HardenError:
        return exc
    for change in changes:
        try:
            rewrite(_fresh(doc), [change], unterminated=unterminated)
        except HardenError:
            exc.line, exc.col = _change_position(unedited, change)
            exc.message = f"{exc.message} ({change.service}: {change.describe()})"
            return exc
        except Exception:  # noqa: BLE001 - locating is best effort; the first error stands
            break
    if changes:
        exc.line, exc.col = _change_position(unedited, changes[0])
    return exc


def _change_position(doc: document.Document, change: Change) -> tuple[int | None, int | None]:
    """The key a change writes into where the service has it, else the service's key."""
    section = document.services(doc)
    service = section.get(change.service) if section is not None else None
    if isinstance(service, dict) and change.path[0] in document.own_keys(service):
        return _key_position(service, change.path[0], doc)
    return _key_position(section, change.service, doc) if section is not None else (change.line, None)


def _service_position(message: str, changes: list[Change]) -> tuple[int | None, int | None]:
    """The line of the service a refusal names (`would change web:`, `['services']['web']`,
    `services/web/...`), else of the first change."""
    for change in changes:
        name = re.escape(change.service)
        if re.search(rf"change {name}:|\['services'\]\['{name}'\]|services/{name}(/|:)", message):
            return change.line, None
    return (changes[0].line, None) if changes else (None, None)


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
    return [s for s in planned if isinstance(s, Skip)] + [Skip(hardening.ID, view.name, reason, view.line)]


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
            plan.skips += [Skip(c, str(name), reason, line, doc.index) for c in CONTROLS]
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
            plan.skips += [Skip(c, view.name, reason, view.line, doc.index) for c in CONTROLS]
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
                plan.skips.append(Skip(hardening.ID, view.name, reason, view.line, doc.index))
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


# --- Compose's merge tags ------------------------------------------------------------------


def _mark_tags(tree: Any, model: data.MapNode) -> None:
    """Record Compose's `!reset` / `!override` tags of the services and their keys (any
    depth) in the model: the plain model keeps a tagged scalar as its text and a tagged
    list as a list."""
    seen: set[int] = set()

    def walk(node: Any, mapnode: Any) -> None:
        if not isinstance(node, dict) or not isinstance(mapnode, data.MapNode) or id(node) in seen:
            return
        seen.add(id(node))
        for key in document.own_keys(node):
            value = node[key]
            tag = str(getattr(getattr(value, "tag", None), "value", None) or "")
            plain_key = document.scalar(key)
            if tag in ("!reset", "!override"):
                mapnode.tags[plain_key] = tag[1:]
            walk(value, mapnode.own.get(plain_key))

    walk(tree, model)


_HARDENING_KEYS = ("user", "read_only", "cap_drop", "security_opt", "mem_limit", "cpus", "pids_limit", "deploy")
_LIMITS = ("deploy", "resources", "limits")


def _is_hardening(path: tuple[Any, ...]) -> bool:
    """A hardening key, or `deploy` / `deploy.resources` / `deploy.resources.limits[.x]`."""
    return bool(path) and path[0] in _HARDENING_KEYS and (path[0] != "deploy" or tuple(path[:3]) == _LIMITS[:len(path[:3])])


def _get(value: Any, path: tuple[Any, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _tag_findings(view: ServiceView, written: ServiceView, current: Any, before: Any) -> list[Finding]:
    """Weakenings by Compose's merge tags: a `!reset` that leaves a hardening key out of
    the merged service, an `!override` that drops entries of a hardening list the service
    had from its base (`before`: the files before this one, or the `extends` base)."""
    out = []
    for path in data.tagged_paths(current, data.RESET_TAG):
        if not _is_hardening(path) or _get(view.data, path)[0]:
            continue
        key = ".".join(str(k) for k in path)
        had, value = _get(before, path)
        what = f"removes {key}: {value!r} that the service has from its base" if had else f"leaves the service without {key}"
        out.append(Finding("weakened", view.name, f"{key}: !reset {what}; harden does not write under a reset, so it stays unhardened",
                           written.line_of(str(path[0]))))
    for path in data.tagged_paths(current, data.OVERRIDE_TAG):
        had, value = _get(before, path)
        if not had or not _is_hardening(path) or not isinstance(value, list):
            continue
        lost = [v for v in value if v not in as_list(_get(view.data, path)[1])]
        if lost:
            key = ".".join(str(k) for k in path)
            out.append(Finding("weakened", view.name, f"{key}: !override drops {', '.join(map(str, lost))} that the service has from its base",
                               written.line_of(str(path[0]))))
    return out


# --- what a change may write into ------------------------------------------------------------


def _admit(planned: list[Change | Skip], control: str, view: ServiceView, root: data.MapNode, doc_tree: Any,
           shared: dict[int, int]) -> list[Change | Skip]:
    """The pass's plan without the changes that could not do what they say: writing under
    a key written with `!reset` (Compose drops it again), into a value inherited through a
    merge key, or into a list / mapping anchored here and aliased elsewhere (that would
    change the other places too). The control is then skipped with the reason; of
    `resources`, only the limits concerned."""
    kept: list[Change | Skip] = []
    reasons: list[str] = []
    for item in planned:
        reason = _blocked(item, view, root, doc_tree, shared) if isinstance(item, Change) else None
        if reason is None:
            kept.append(item)
        else:
            reasons.append(reason)
    if not reasons:
        return planned
    if control != "resources":
        kept = [s for s in planned if isinstance(s, Skip)]
    return kept + [Skip(control, view.name, "; ".join(dict.fromkeys(reasons)), view.line)]


def _blocked(change: Change, view: ServiceView, root: data.MapNode, doc_tree: Any, shared: dict[int, int]) -> str | None:
    section = data.services(root)
    service = section.own.get(change.service) if section is not None else None
    if not isinstance(service, data.MapNode):
        return None
    key = ".".join(change.path)
    for path in data.tagged_paths(service, data.RESET_TAG):
        if tuple(path[:len(change.path)]) == tuple(change.path[:len(path)]):
            reset = ".".join(str(k) for k in path)
            return f"{reset} is written with !reset (line {view.line_of(str(path[0]))}): Compose drops what is written there, so {key} cannot be set"
    node: Any = service
    for depth, part in enumerate(change.path[:-1] if change.op is Op.SET else change.path):
        if not isinstance(node, data.MapNode):
            return None
        at = ".".join(change.path[:depth + 1])
        if part not in node.own:
            if depth and node.lookup(part)[0]:
                return f"{at} is inherited through a merge key; set {key} where the anchor is written"
            return None
        node = node.own[part]
        if not isinstance(node, (data.MapNode, list)) or shared.get(id(node), 0) <= 1:
            continue
        here = ("services", change.service, *change.path[:depth + 1])
        places = data.where(root, node)
        home = next((p for p in places if _written_at(doc_tree, p)), None)
        elsewhere = [".".join(map(str, p)) for p in places if p != here]
        others = ", ".join(elsewhere[:3]) + (f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else "")
        if home == here:
            return (f"{at} holds an anchor that is also used at {others}: adding to it would change those too; "
                    f"give the service a {change.path[0]} of its own to harden it")
        if home is not None and len(home) > 2 and home[0] == "services" and home[2] in _WRITTEN_KEYS:
            # Copying here would leave that anchor unshared, and the next run would extend it.
            return (f"{at} is an alias of {'.'.join(map(str, home))}, which harden does not extend while it is aliased; "
                    f"give each service a {change.path[0]} of its own to harden them")
    return None


# Service keys harden writes into (`invariants.HARDENING_KEYS` of the tests).
_WRITTEN_KEYS = ("user", "read_only", "tmpfs", "cap_drop", "cap_add", "security_opt", "mem_limit", "cpus", "pids_limit", "deploy")


def _written_at(tree: Any, path: tuple[Any, ...]) -> bool:
    """True where the value at `path` (from the document's root) is written there with its
    anchor, not as an `*alias` of a value written elsewhere."""
    node: Any = tree
    for part in path[:-1]:
        if not isinstance(node, dict) or part == "<<" or part not in document.own_keys(node):
            return False
        node = node[part]
    return isinstance(node, dict) and path[-1] in document.own_keys(node) and written_here(node, path[-1])


# --- what Compose itself refuses ---------------------------------------------------------------

# Each checked against the Docker Compose v2 loader (tests/test_trust_core.py): it refuses
# a service without a value, these keys without a value (in the file that defines the
# service; an override may leave them empty), of another type, and duplicate list items.
_LISTS = ("cap_add", "cap_drop", "security_opt")
_STRINGS = ("user",)
_UNIQUE = ("security_opt", "group_add", "volumes_from", "external_links", "device_cgroup_rules")
_NOT_NULL = ("user", "read_only", "tmpfs", "cap_add", "cap_drop", "security_opt", "mem_limit")


def _compose_accepts(doc: document.Document, tree: Any, name: Any, model: data.MapNode, project: Project) -> None:
    """Raise `InputError` at line:column where Compose itself rejects the service as
    written: harden would otherwise report a file Compose cannot load as hardened."""
    node = tree.get(name)
    defines = str(name) not in project.merged
    if node is None:
        if defines:
            raise InputError(f"service {name!r} is not a mapping (it has no value); Compose rejects it", *_key_position(tree, name, doc))
        return
    current = model.lookup(name)[1]
    if not isinstance(node, dict) or not isinstance(current, data.MapNode):
        return
    where = lambda key: document.value_position(node, key, doc.first_line)  # noqa: E731
    for raw in document.own_keys(node):
        key = document.scalar(raw)
        value = current.own.get(key)
        if current.tags.get(key):
            continue
        if value is None:
            if key in _NOT_NULL and defines:
                raise InputError(f"service {name!r}: {key} has no value; Compose rejects it (give it a value or remove the key)",
                                 *_key_position(node, raw, doc))
            continue
        if key in _LISTS and not isinstance(value, list):
            hint = f"; write it as a list: [{value}]" if isinstance(value, str) else ""
            raise InputError(f"service {name!r}: {key} must be a list, Compose rejects {value!r}{hint}", *where(key))
        if key in _STRINGS and not isinstance(value, str):
            raise InputError(f"service {name!r}: {key} must be a string, Compose rejects {value!r} (quote it)", *where(key))
        if key in (*_LISTS, "tmpfs") and isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise InputError(f"service {name!r}: {key} item {item!r} must be a string, Compose rejects it",
                                     *_item(node[raw], index, doc, where(key)))
        if key in _UNIQUE and isinstance(value, list):
            seen: dict[Any, int] = {}
            for index, item in enumerate(value):
                if not isinstance(item, (str, int, float)):
                    continue
                if item in seen:
                    raise InputError(f"service {name!r}: {key} lists {item!r} twice (items {seen[item] + 1} and {index + 1}); Compose rejects that",
                                     *_item(node[raw], index, doc, where(key)))
                seen[item] = index
    _extends_chain(doc, tree, name, model)


def _key_position(mapping: Any, key: Any, doc: document.Document) -> tuple[int | None, int | None]:
    try:
        line, col = mapping.lc.key(key)
        return line + 1 + doc.first_line, col + 1
    except (AttributeError, KeyError, TypeError):
        return None, None


def _item(seq: Any, index: int, doc: document.Document, fallback: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    try:
        line, col = seq.lc.item(index)
        return line + 1 + doc.first_line, col + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return fallback


def _extends_chain(doc: document.Document, tree: Any, name: Any, model: data.MapNode) -> None:
    """A same-file `extends` must name a service of the file and must not lead back to itself."""
    chain = [name]
    while True:
        resolved = data.compose(model.lookup(chain[-1])[1])
        base = inherit.local_base(resolved) if isinstance(resolved, dict) else None
        if base is None or is_variable(base):
            return
        if base == name or (len(chain) == 1 and not model.lookup(base)[0]):
            line, col = document.value_position(tree.get(name), "extends", doc.first_line)
            problem = f"extends {base!r}, which this file does not define" if base != name else \
                f"extends leads back to itself ({' -> '.join(map(str, [*chain, base]))})"
            raise InputError(f"service {name!r}: {problem}; Compose rejects it", line, col)
        if base in chain or not model.lookup(base)[0]:
            return  # a circle that does not pass through this service: reported at its own services
        chain.append(base)


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
        raise InputError("empty file; not a Compose file", 1, 1)
    facts, documents = document.parse(_mask_directives(text))
    if all(doc.tree is None for doc in documents):
        raise InputError("only comments, no YAML content; not a Compose file", 1, 1)
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
            unterminated = not facts.final_newline and doc is documents[-1]
            try:
                pieces.append(rewrite(doc, mine, unterminated=unterminated))
            except HardenError as exc:
                done = _through_flow_text(doc, mine, unterminated) if isinstance(exc, RefusedError) else None
                if done is None:
                    raise _placed(exc, doc, mine, unterminated) from None
                pieces.append(done[0])
                documents[doc.index] = done[1]  # what the second run plans against
        output = _unmask_directives(document.join_facts(facts, "".join(pieces)))
        try:
            safety.check(before, intended, output, lambda: plan_text(documents, profile, skip, project).changes, original=text)
        except HardenError as exc:
            if exc.line is None:
                exc.line, exc.col = _service_position(exc.message, plan.changes)
            raise
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
