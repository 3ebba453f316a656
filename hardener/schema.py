"""The compose-spec JSON schema (as vendored by check-jsonschema), validator built once.

The schema file is found where the `check_jsonschema` package is installed without
importing that package (its import loads its whole command line, HTTP client included),
and jsonschema itself is imported, and the validator built, the first time a document is
checked: a run that checks nothing (`--help`, a file with nothing to change) never pays
for them.

`gained` validates only what differs: the top-level keys and, within `services`, the
services and their keys whose values changed. That finds every error a change brings in
because the schema judges each of those keys on its own (no keyword ties one key of the
file, or of a service, to another: `keywise`, checked on the schema as loaded); where it
did not, whole changed services are validated.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources, util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_DURATION = re.compile(r"^[-+]?((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+$")
_PACKAGE = "check_jsonschema"
_VENDORED = ("builtin_schemas", "vendor", "compose-spec.json")


def schema_text() -> str:
    """The compose-spec schema as check-jsonschema ships it."""
    spec = util.find_spec(_PACKAGE)  # a top-level package is found, not imported
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).joinpath(*_VENDORED)
        if path.is_file():
            return path.read_text(encoding="utf-8")
    # Installed some other way (a zip, ...): ask the package's own resource reader.
    return resources.files(".".join((_PACKAGE, *_VENDORED[:-1]))).joinpath(_VENDORED[-1]).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker()
    checker.checks("duration")(lambda value: not isinstance(value, str) or bool(_DURATION.match(value)) or "$" in value)
    return Draft202012Validator(json.loads(schema_text()), format_checker=checker)


#: keywords of an object schema that judge each of its keys on its own
_KEYWISE = frozenset({"$schema", "$id", "type", "title", "description", "properties", "patternProperties",
                      "additionalProperties", "unevaluatedProperties", "allOf", "$ref", "$defs"})


@lru_cache(maxsize=1)
def keywise() -> bool:
    """True when neither the file nor a service has a keyword that ties keys together
    (`required`, `dependentRequired`, `if`, `not`, `minProperties`, ...)."""
    spec = json.loads(schema_text())
    defs = spec.get("$defs", {})

    def loose(node: Any, seen: frozenset[str] = frozenset()) -> bool:
        """`node` (and what it takes in through `allOf` and `$ref`) judges each key alone."""
        if not isinstance(node, dict) or not set(node) <= _KEYWISE:
            return False
        if not all(loose(part, seen) for part in node.get("allOf", [])):
            return False
        ref = node.get("$ref")
        if ref is None:
            return True
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) and ref.startswith("#/$defs/") else None
        return name is not None and name not in seen and loose(defs.get(name), seen | {name})

    services = spec.get("properties", {}).get("services", {})
    service = services.get("patternProperties", {}) if isinstance(services, dict) else {}
    return loose(spec) and loose(services) and len(service) == 1 and loose(next(iter(service.values())))


def gained(before: Any, after: Any) -> set[str]:
    """Schema errors of `after` that `before` has not, validating only what differs."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return errors(after) - errors(before)
    old, new = _differing(before, after, keys=keywise())
    found = errors(new)
    return found - errors(old) if found else found


def _differing(before: dict[Any, Any], after: dict[Any, Any], keys: bool) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Both documents cut down to their top-level keys that differ; `services` to the
    services that differ, each cut down to its differing keys where `keys` (else whole)."""
    service = lambda key: None  # noqa: E731  (a service's keys: each judged alone)
    services = lambda name: service if keys else None  # noqa: E731
    return _cut(before, after, lambda key: services if key == "services" else None)


Into = Callable[[Any], "Into | None"]


def _cut(before: dict[Any, Any], after: dict[Any, Any], into: Into) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Both mappings cut down to their keys whose values differ; where `into(key)` says
    how, the two values (both mappings) are cut down the same way in turn."""
    old: dict[Any, Any] = {}
    new: dict[Any, Any] = {}
    for key in dict.fromkeys([*before, *after]):
        a, b = before.get(key, _MISSING), after.get(key, _MISSING)
        if a == b:
            continue
        deeper = into(key)
        if deeper is not None and isinstance(a, dict) and isinstance(b, dict):
            a, b = _cut(a, b, deeper)
        if a is not _MISSING:
            old[key] = a
        if b is not _MISSING:
            new[key] = b
    return old, new


_MISSING = object()


def errors(data: Any) -> set[str]:
    """Schema errors as comparable strings: 'path: message'."""
    found = set()
    for error in validator().iter_errors(data):
        path = "/".join(str(p) for p in error.absolute_path)
        if error.validator in ("unevaluatedProperties", "additionalProperties"):
            # The message lists every key of the mapping; new keys must not make it "new".
            found.add(f"{path}: {error.validator}")
        else:
            found.add(f"{path}: {error.message}")
    return found
