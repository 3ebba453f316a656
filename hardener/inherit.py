"""What a service gets from elsewhere: a same-file `extends` base, an earlier file of
the project (base before override), an `extends: {file: ...}` target.

Compose merges these into the service; planning must see the merged service, or it adds
what the base already holds (Compose then rejects duplicate `security_opt` items) and
misses what an override loosens. Compose's merge tags take part: a key written with
`!reset` is removed from what the base holds, one written with `!override` replaces it
(`data.RESET` / `data.Override` in the data of the later file, see `data.compose`).
"""

from __future__ import annotations

from typing import Any

from . import data
from .model import Finding, Project
from .values import as_list, cap_name, is_false, is_root_user, is_true
from .view import ServiceView

# Lists that Compose concatenates when a service `extends` another.
_CONCAT = ("cap_add", "cap_drop", "security_opt", "tmpfs", "volumes", "dns", "ports", "expose")


def merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` merged onto `base` as Compose merges a later file (or an `extends`ing
    service) onto an earlier one; the result holds no merge-tag markers."""
    out = clean(base)
    for key, value in own.items():
        if isinstance(value, data.Reset):
            out.pop(key, None)
        elif isinstance(value, data.Override):
            out[key] = clean(value.value)
        elif key in _CONCAT and isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = [*out[key], *clean(value)]
        elif isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = clean(value)
    return out


def clean(value: Any) -> Any:
    """`value` as the file it comes from means it alone: no `RESET` / `Override` markers."""
    if isinstance(value, dict):
        return {k: clean(v.value if isinstance(v, data.Override) else v) for k, v in value.items() if not isinstance(v, data.Reset)}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def local_base(service: dict[str, Any]) -> str | None:
    """The service this one `extends` within the same file, if any."""
    ext = service.get("extends")
    if isinstance(ext, str):
        return ext
    if isinstance(ext, dict) and "file" not in ext and isinstance(ext.get("service"), str):
        return ext["service"]
    return None


def file_order(services: list[Any], model: data.MapNode) -> list[Any]:
    """File order, except that a service comes after the one it extends."""
    order: list[Any] = []
    seen: set[Any] = set()

    def visit(name: Any, stack: tuple[Any, ...]) -> None:
        if name in seen or name in stack or name not in services:
            return
        resolved = data.resolve(model.lookup(name)[1])
        base = local_base(resolved) if isinstance(resolved, dict) else None
        if base is not None:
            visit(base, (*stack, name))
        seen.add(name)
        order.append(name)

    for name in services:
        visit(name, ())
    return order


def effective(name: Any, model: data.MapNode, depth: int = 0) -> dict[str, Any]:
    """A service's data with its same-file `extends` chain applied, as planned so far."""
    marked = data.compose(model.lookup(name)[1], marks=True)
    if not isinstance(marked, dict):
        return {}
    base = local_base(clean(marked))
    if base is None or depth > 20 or not model.lookup(base)[0]:
        return clean(marked)
    return merge(effective(base, model, depth + 1), marked)


def weakening(name: str, own: dict[str, Any], line: int | None) -> list[Finding]:
    """An override that loosens what the base file sets."""
    out = []
    if is_true(own.get("privileged")):
        out.append(Finding("weakened", name, "override sets privileged: true on a service defined in another file", line=line))
    if is_false(own.get("read_only")):
        out.append(Finding("weakened", name, "override sets read_only: false on a service defined in another file", line=line))
    if any(cap_name(c) == "ALL" for c in as_list(own.get("cap_add"))):
        out.append(Finding("weakened", name, "override adds cap_add: ALL on a service defined in another file", line=line))
    if is_root_user(own.get("user")):
        out.append(Finding("weakened", name, "override runs as root a service defined in another file", line=line))
    return out


def external_base(view: ServiceView, project: Project) -> dict[str, Any] | None:
    """Data this service gets from another file: an earlier file of the project, or an
    `extends: {file: ...}` target."""
    if view.name in project.merged:
        return clean(dict(project.merged[view.name]))
    ext = view.data.get("extends")
    if isinstance(ext, dict) and isinstance(ext.get("file"), str):
        target = project.extends.get((ext["file"], str(ext.get("service", view.name))))
        return clean(dict(target)) if isinstance(target, dict) else None
    return None


