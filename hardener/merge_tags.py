"""Compose's merge tags, `!reset` and `!override`: what they do to the merged service, and a
reset of a hardening key reported as a weakening."""


from __future__ import annotations

from typing import Any

from . import data, document
from .model import Finding
from .values import as_list
from .view import ServiceView


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
                           line=written.line_of(str(path[0]))))
    for path in data.tagged_paths(current, data.OVERRIDE_TAG):
        had, value = _get(before, path)
        if not had or not _is_hardening(path) or not isinstance(value, list):
            continue
        lost = [v for v in value if v not in as_list(_get(view.data, path)[1])]
        if lost:
            key = ".".join(str(k) for k in path)
            out.append(Finding("weakened", view.name, f"{key}: !override drops {', '.join(map(str, lost))} that the service has from its base",
                               line=written.line_of(str(path[0]))))
    return out
