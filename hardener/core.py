"""The pure core: Compose text + profile in, `Result` out. No I/O, no printing.

parse → plan every service through the passes in order → apply the changes to the tree →
render them as a minimal patch onto the original text → safety net. Any failure becomes
an error `Result`; nothing half-done leaves this module.
"""


from __future__ import annotations

import re

from . import data, document, safety
from .rewrite import rewrite
from .rewrite.edit import flow_append
from .model import Change, Failure, HardenError, InputError, Op, Project, RefusedError, Result, Status
from .profile import Profile
from .compose_rules import _key_position
from .planner import plan_text, planned_services, _looks_v1


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
