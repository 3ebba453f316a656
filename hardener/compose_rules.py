"""What Compose itself refuses (a service that is no mapping, duplicate items, an extends
cycle, a list written as a string, ...): an input error at its place, before any change;
and what makes it refuse a fragment loaded alone (`alone_refused`)."""


from __future__ import annotations

import os
import re
from typing import Any

from . import data, document, inherit
from .model import InputError, Project
from .values import as_list, is_variable


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


# --- what Compose refuses in a file loaded as a project of its own -----------------------------

_NAMED_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a volume name, not a path


def alone_refused(data: Any, project_dir: str) -> str | None:
    """Why Docker Compose most likely refuses this file (one document's plain data) loaded
    as a project of its own, or None: a fragment meant to be merged with other files (a
    service without image or build, a network, volume or service it names but does not
    define) or a file that names an env_file that is not there. A guess that orders the
    loader check (`oracle.check`), never its verdict: the first rule that holds is said."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return None
    services = data["services"]
    networks = data.get("networks") if isinstance(data.get("networks"), dict) else {}
    volumes = data.get("volumes") if isinstance(data.get("volumes"), dict) else {}
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        if "image" not in service and "build" not in service and "extends" not in service:
            return f"service {name} has neither an image nor a build context"
        named = service.get("networks")
        for network in named if isinstance(named, (list, dict)) else []:
            if isinstance(network, str) and network != "default" and network not in networks:
                return f"service {name} refers to undefined network {network}"
        for entry in as_list(service.get("volumes")):
            source = _volume_name(entry)
            if source is not None and source not in volumes:
                return f"service {name} refers to undefined volume {source}"
        depends = service.get("depends_on")
        for other in depends if isinstance(depends, (list, dict)) else []:
            if isinstance(other, str) and other not in services:  # `required: false` too
                return f"service {name} depends on undefined service {other}"
        for entry in as_list(service.get("env_file")):
            path = entry.get("path") if isinstance(entry, dict) else entry
            required = not (isinstance(entry, dict) and entry.get("required") is False)
            if required and isinstance(path, str) and path and not is_variable(path) \
                    and not os.path.exists(os.path.join(project_dir, os.path.expanduser(path))):
                return f"service {name}: env file {path} not found"
    return None


def _volume_name(entry: Any) -> str | None:
    """The named volume a `volumes:` entry mounts (short or long syntax), or None."""
    if isinstance(entry, dict):
        source = entry.get("source")
        kind = entry.get("type", "volume")
        return source if kind == "volume" and isinstance(source, str) and _NAMED_SOURCE.match(source) else None
    if isinstance(entry, str) and ":" in entry and not is_variable(entry):
        source = entry.split(":", 1)[0]
        return source if _NAMED_SOURCE.match(source) else None
    return None
