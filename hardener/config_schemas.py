"""The schemas of the three configuration surfaces: profile, `x-harden`, images.yaml.

The JSON files in `profiles/` hold what is common. What belongs to a control is declared
once, in its pass module, and joined in when a schema is loaded:

* the control ids (`$defs/control`: `skip` of every surface) are `hardener.passes.CONTROLS`;
* each pass module's `PROFILE` is the schema of the profile sections it reads, its
  `X_HARDEN` that of the `x-harden` keys it reads;
* the capability names (`$defs/capability`) are `values.CAPABILITIES`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .config import data_dir
from .values import CAPABILITIES

if TYPE_CHECKING:  # imported when a validator is built (slow to import)
    from jsonschema import Draft202012Validator

#: Surface -> the constant of a pass module that holds its part of that surface's schema.
FRAGMENTS = {"profile": "PROFILE", "x-harden": "X_HARDEN", "images": None}


def schema(surface: str) -> dict[str, Any]:
    """The complete JSON Schema of `surface` ("profile", "x-harden" or "images")."""
    from .passes import CONTROLS  # here, not above: the pass modules import Settings

    document = json.loads(data_dir().joinpath(f"{surface}.schema.json").read_text(encoding="utf-8"))
    defs = document.setdefault("$defs", {})
    defs["control"] = {**defs.get("control", {}), "enum": list(CONTROLS)}
    if "capability" in defs:
        defs["capability"] = {**defs["capability"], "enum": list(CAPABILITIES)}
    properties = document["properties"]
    for key, part in contributions(surface).items():
        if key in properties:
            raise ValueError(f"{surface}.schema.json already defines {key!r}, which a pass declares too")
        properties[key] = part
    return document


def contributions(surface: str) -> dict[str, Any]:
    """The keys the pass modules add to `surface`, with their schemas, in pass order."""
    from .passes import PASSES

    constant = FRAGMENTS[surface]
    out: dict[str, Any] = {}
    for module in PASSES if constant else ():
        for key, part in getattr(module, constant, {}).items():
            if key in out:
                raise ValueError(f"{surface} key {key!r} is declared by two passes (the second: {module.ID})")
            out[key] = part
    return out


@lru_cache(maxsize=len(FRAGMENTS))
def validator(surface: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(surface))
