"""The compose-spec JSON schema (as vendored by check-jsonschema), validator built once."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

_DURATION = re.compile(r"^[-+]?((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+$")


@lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text(encoding="utf-8")
    checker = FormatChecker()
    checker.checks("duration")(lambda value: not isinstance(value, str) or bool(_DURATION.match(value)) or "$" in value)
    return Draft202012Validator(json.loads(text), format_checker=checker)


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
