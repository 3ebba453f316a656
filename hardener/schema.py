"""The compose-spec JSON schema (as vendored by check-jsonschema), validator built once.

The schema file is found where the `check_jsonschema` package is installed without
importing that package (its import loads its whole command line, HTTP client included),
and jsonschema itself is imported, and the validator built, the first time a document is
checked: a run that checks nothing (`--help`, a file with nothing to change) never pays
for them.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources, util
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
