"""What Compose itself refuses (a service that is no mapping, duplicate items, an extends
cycle, a list written as a string, ...): an input error at its place, before any change."""


from __future__ import annotations

from typing import Any

from . import data, document, inherit
from .model import InputError, Project
from .values import is_variable


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
