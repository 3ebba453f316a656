"""Configuration, checked: the one validator of profiles, `x-harden` and images.yaml.

Configuration is plain data (what the YAML loader gives) checked against a JSON Schema
(Draft 2020-12, see `config_schemas`). The first error in document order becomes one
`ConfigError` naming where it is — the file or the service, the line:column of the YAML
node, the key path — and suggesting the nearest known key or value for a misspelling.

Positions are only needed once something is wrong: a configuration file is loaded by the
fast safe loader, and read again with the round-trip loader (whose nodes know their
line and column) only to place an error.

Besides the JSON Schema keywords, a schema may say `errorMessage` (as ajv-errors does):
a message for any error of that subschema, or a mapping keyword -> message; `{value}`
in it stands for the offending value.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping


from .model import InputError

if TYPE_CHECKING:  # jsonschema is imported where a schema is checked (slow to import)
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

KeyPath = tuple[Any, ...]  # keys and list indexes from the top of the configuration
Positions = Mapping[KeyPath, tuple[int, int]]


class ConfigError(InputError):
    """Bad configuration. When it is a file of its own (a profile, images.yaml) the file
    and line:column are in the message and `line`/`col` stay None: those point into the
    Compose file being hardened, which is where an `x-harden` error is."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None, position: tuple[int, int] | None = None):
        super().__init__(message, line, col)
        self.position = position


def data_dir() -> Any:
    """The shipped `profiles/` folder (package `hardener.profiles` once installed)."""
    try:
        return resources.files("hardener.profiles")
    except ModuleNotFoundError:  # running from a source checkout
        return Path(__file__).resolve().parent.parent / "profiles"


@dataclass
class Config:
    """Configuration data and what it takes to point at a part of it.

    `where` names it in messages ("profile", "service 'db'"); `file`, when set, is the
    file it was read from; `prefix` is its own path in the positions (("x-harden",) for
    a service's block); `located` gives the positions, on demand.
    """

    data: Any
    where: str = ""
    file: str | None = None
    prefix: KeyPath = ()
    located: Callable[[], Positions] | Positions = field(default_factory=dict)

    @cached_property
    def positions(self) -> Positions:
        return self.located() if callable(self.located) else self.located

    def check(self, validator: Draft202012Validator) -> None:
        """Raise `ConfigError` for the first schema error, in document order."""
        errors = list(validator.iter_errors(self.data))
        if not errors:
            return
        found = [(self._located_path(e), e) for e in errors]
        first = min(range(len(found)), key=lambda i: (self._position(found[i][0]) or (1 << 30, 0), i))
        at, error = found[first]
        raise self.error(tuple(error.absolute_path), _describe(error), at)

    def error(self, path: KeyPath, message: str, at: KeyPath | None = None) -> ConfigError:
        """The error `message` about the value at `path` (keys and list indexes), placed
        at the node of `at` (default: `path`)."""
        position = self._position(path if at is None else at)
        key = _key_path(self.prefix + path, self.data, len(self.prefix))
        text = f"{key}: {message}" if key else message
        if self.file is not None:
            place = f"{self.file}:{position[0]}:{position[1]}" if position else self.file
            return ConfigError(f"{self.where} {place}: {text}".lstrip(), position=position)
        head = f"{self.where}: " if self.where else ""
        return ConfigError(head + text, *(position or (None, None)), position=position)

    def _located_path(self, error: ValidationError) -> KeyPath:
        """The path of the node an error is about: an unknown key or control id is the key."""
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = _extra_keys(error)
            return (*path, extra[0]) if extra else path
        if "propertyNames" in error.absolute_schema_path:
            return (*path, error.instance)
        return path

    def _position(self, path: KeyPath) -> tuple[int, int] | None:
        full = self.prefix + path
        table = self.positions
        for end in range(len(full), -1, -1):
            if full[:end] in table:
                return table[full[:end]]
        if table and not full:
            return min(table.values())[0], 1  # the whole document: its first line
        return None


def read_yaml(text: str, file: str, where: str = "") -> Config:
    """A configuration file's text as `Config`: data from the safe loader, positions
    from the round-trip loader when an error needs them."""
    from .document import load_one

    try:
        data = load_one(text)
    except InputError as exc:
        located = {(): (exc.line, exc.col)} if exc.line is not None else {}
        reason = exc.message[len("invalid YAML: "):]
        raise Config(None, where, file, located=located).error((), f"invalid YAML: {_cut(reason, 120)}") from None
    if data is not None and not isinstance(data, dict):  # not configuration: quote none of it
        kind = "a list" if isinstance(data, list) else "text" if isinstance(data, str) else f"a {type(data).__name__}"
        raise Config(None, where, file, located={(): (1, 1)}).error((), f"must be a mapping, got {kind}") from None
    return Config(data, where, file, located=lambda: _tree_positions(text))


def _tree_positions(text: str) -> Positions:
    from .document import text_positions

    return text_positions(text)


# --- messages ----------------------------------------------------------------------------

_KINDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
          "number": "a number", "boolean": "true or false", "null": "null"}


def _describe(error: ValidationError) -> str:
    if error.context:  # anyOf / oneOf: the branch that came closest says it best
        from jsonschema.exceptions import best_match

        return _describe(best_match(error.context))
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, dict):
        custom = custom.get(error.validator)
    value = error.instance
    if error.validator == "additionalProperties":
        extra = _extra_keys(error)
        known = [str(k) for k in error.schema.get("properties", {})]
        if extra and not _PLAIN_KEY.match(str(extra[0])):  # a line of some other file, not a key: not shown
            return "unknown key (not a plain name; not shown)"
        return f"unknown key {_quoted(extra[0])}{_hint(extra[0], known)}" if extra else error.message
    if custom:
        message = custom.replace("{value}", _quoted(value))
    elif error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        message = f"must be {' or '.join(_KINDS.get(t, t) for t in wanted)}, got {_shown(value)}"
    elif error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
        message = f"missing required key {missing[0]!r}" if missing else error.message
    elif error.validator == "enum":
        message = f"unknown value {_quoted(value)}"
    elif error.validator == "const":
        message = f"must be {error.validator_value!r}, got {_shown(value)}"
    elif error.validator == "minItems" and error.validator_value == 1:
        message = "must not be empty"
    elif error.validator == "uniqueItems":
        message = "has duplicated items"
    else:
        message = error.message
    if error.validator == "enum":
        options = [str(o) for o in error.validator_value]
        message += _hint(value, options)
        if len(options) <= 10:
            message += f"; one of: {', '.join(options)}"
    return message


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list ({value!r})" if len(repr(value)) <= 40 else "a list"
    return "null" if value is None else _quoted(value)


_PLAIN_KEY = re.compile(r"\A[A-Za-z0-9_.-]{1,40}\Z")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(value: Any, limit: int = 40) -> str:
    """A value from a configuration file as a message shows it: escaped (repr) and short;
    a message never carries more of a file than that."""
    return _cut(repr(value), limit)


def _hint(value: Any, known: list[str]) -> str:
    folded = {k.casefold(): k for k in known}
    hints = difflib.get_close_matches(str(value).casefold(), list(folded), n=1)
    return f" (did you mean {folded[hints[0]]!r}?)" if hints else ""


def _extra_keys(error: ValidationError) -> list[Any]:
    known = error.schema.get("properties", {})
    return [k for k in (error.instance or {}) if k not in known]


def _key_path(path: KeyPath, data: Any, skip: int) -> str:
    """`resources.pids`, `images[3] ('redis-7').user`: keys joined by dots, list indexes in
    brackets, a list item that has an `id` named by it. `skip` leading parts are not in
    `data` (the prefix of a block checked on its own)."""
    out = ""
    node = data
    for depth, part in enumerate(path):
        inside = depth >= skip
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            node = node[part] if inside and isinstance(node, list) and 0 <= part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out += f" ({node['id']!r})"
            continue
        out += f".{part}" if out else str(part)
        if inside:
            node = node.get(part) if isinstance(node, dict) else None
    return out
