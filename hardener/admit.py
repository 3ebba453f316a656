"""What a change may write into: never extend a node that is aliased elsewhere or inherited;
a change that would is left out with the reason."""


from __future__ import annotations

from typing import Any

from . import data, document
from .rewrite.edit import written_here
from .model import Change, Op, Skip
from .view import ServiceView


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
    return kept + [Skip(control, view.name, "; ".join(dict.fromkeys(reasons)), line=view.line)]


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
