"""Checks shared by the fixture, property and corpus tests.

`lost_lines` is the strict form of invariant 1 (untouched lines are byte-identical). An
original line may change or disappear only where hardening has to write:

(a) inside the span of a hardening key written in a service itself (`HARDENING_KEYS`,
    not one it inherits through `<<:`): from the key's line to the last line of its
    value (a block list's last item, a flow collection's closing bracket, a block
    scalar's last non-blank line). `deploy` is one of them: limits are added under it.
(b) on the lines of a service written as a flow mapping (`web: {image: x}`): new keys
    go inside its braces.

Every other line of the original must be in the output, byte for byte (its own line
ending included), in the original order; lines may be inserted anywhere. The spans come
from parsing the ORIGINAL with ruamel.yaml's round-trip pipeline, independently of the
code under test: every document of the stream (`---`), the services under `services:`,
their own keys (a `<<:` merge key and what it brings in give nothing), a service written
as an alias of another node gives nothing either (its anchor is never edited through it).
The composed nodes are used rather than the loaded tree's `.lc`: `.lc` holds where a
value starts, a node also where it ends. An original that does not parse gives no span:
every one of its lines must be kept.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

HARDENING_KEYS = frozenset({
    "user", "read_only", "tmpfs", "cap_drop", "cap_add", "security_opt",
    "mem_limit", "cpus", "pids_limit", "deploy",
})
MERGE_TAG = "tag:yaml.org,2002:merge"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # a YAML line: CRLF, a lone CR or LF ends it
_TRAILING_TABS = re.compile(r"[ \t]+(?=\r\n|\r|\n|$)|\t+(?=[ \t]*#)")  # before a line end or a comment


def newline_of(text: str) -> str:
    """The line end harden gives inserted lines: CRLF where any line has it, else LF
    where any has it, else a lone CR."""
    return "\r\n" if "\r\n" in text else "\n" if "\n" in text else "\r" if "\r" in text else "\n"


def _lines(text: str) -> list[str]:
    """The lines of `text`, each with its own line end; a last line without one gets the
    text's line end (appending keys after it gives it one in the output)."""
    lines = _LINE.findall(text)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline_of(text)
    return lines


def _spellings(text: str) -> tuple[str, str]:
    """`text`, then `text` with the tabs of trailing blanks and before a comment made
    spaces (ruamel refuses some that YAML allows; every line stays where it is)."""
    return text, _TRAILING_TABS.sub(lambda m: m.group(0).replace("\t", " "), text)


def _compose(text: str) -> list:
    """Root nodes of every document (None where a document is empty); [] if the text does
    not parse."""
    for attempt in _spellings(text):
        try:
            return list(YAML(typ="rt").compose_all(attempt))
        except Exception:  # any parser failure: no span, every line kept
            continue
    return []


def _last_line(node, lines: list[str]) -> int:
    """0-based line of the last character of `node` as written."""
    if isinstance(node, ScalarNode):
        end = node.end_mark.line if node.end_mark.column > 0 else node.end_mark.line - 1
        if node.style in ("|", ">"):  # the scalar takes the blank lines after it
            while end > node.start_mark.line and not lines[end].strip():
                end -= 1
        return max(end, node.start_mark.line)
    if getattr(node, "flow_style", False):  # ends at its closing bracket
        return node.end_mark.line
    if isinstance(node, SequenceNode):
        return max([node.start_mark.line, *(_last_line(item, lines) for item in node.value)])
    if isinstance(node, MappingNode):
        return max([node.start_mark.line, *(max(_last_line(k, lines), _value_end(k, v, lines)) for k, v in node.value)])
    return node.start_mark.line


def _value_end(key, value, lines: list[str]) -> int:
    """Last line of `key: value`: the key's own line when the value is written elsewhere
    (an alias) or empty (`cap_drop:` with nothing after it)."""
    if value.start_mark.index < key.start_mark.index:  # an alias: the node is its anchor's
        return key.end_mark.line
    if isinstance(value, ScalarNode) and value.value == "" and value.style is None:
        return key.end_mark.line
    return max(key.end_mark.line, _last_line(value, lines))


def _mapping_get(node, name: str):
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag != MERGE_TAG and key.value == name:
                return value
    return None


def changeable_lines(original: str) -> set[int]:
    """0-based lines of `original` that hardening may change or remove (see the module)."""
    lines = _lines(original)
    free: set[int] = set()
    for root in _compose(original):
        services = _mapping_get(root, "services")
        if not isinstance(services, MappingNode):
            continue
        for name, service in services.value:
            if name.tag == MERGE_TAG or not isinstance(service, MappingNode):
                continue
            if service.start_mark.index < name.start_mark.index:  # `web2: *web`: the anchor's lines
                continue
            if service.flow_style:
                free.update(range(name.start_mark.line, _last_line(service, lines) + 1))
                continue
            for key, value in service.value:
                if isinstance(key, ScalarNode) and key.tag != MERGE_TAG and key.value in HARDENING_KEYS:
                    free.update(range(key.start_mark.line, _value_end(key, value, lines) + 1))
    return free


def lost_lines(original: str, output: str) -> list[str]:
    """Original lines outside `changeable_lines` that the output does not keep byte for
    byte and in order (empty when the output is the original plus insertions and edits
    inside the hardening spans)."""
    a, b = _lines(original), _lines(output)
    free = changeable_lines(original)
    kept = [line for number, line in enumerate(a) if number not in free]
    # Greedy earliest matching decides whether `kept` is a subsequence of the output.
    position = 0
    for line in kept:
        try:
            position = b.index(line, position) + 1
        except ValueError:
            break
    else:
        return []
    # Some line is missing: name the kept lines a line diff does not match.
    matched = SequenceMatcher(None, kept, b, autojunk=False).get_matching_blocks()
    found = {i for i1, _, size in matched for i in range(i1, i1 + size)}
    return [line for number, line in enumerate(kept) if number not in found]


def facts(text: str) -> tuple[bool, bool, bool]:
    """(BOM, CRLF, final line break) of a text (a lone CR is a line break for YAML)."""
    return text.startswith("\ufeff"), "\r\n" in text, text.endswith(("\n", "\r"))


# --- every control applied or reported ------------------------------------------------------

CONTROLS = ("user", "read_only", "capabilities", "no_new_privileges", "resources")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_]")
_TRUE = {"true", "yes", "y", "on"}


def _variable(value) -> bool:
    return isinstance(value, str) and bool(_VARIABLE.search(value))


def _plain(node):
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}  # merge keys resolved
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _items(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def controls_in_place(service) -> set[str]:
    """The controls a service (plain data, as Compose reads it) carries; a `${VAR}` value
    counts as the author's choice."""
    if not isinstance(service, dict):
        return set()
    found = set()
    user = service.get("user")
    if user is not None and (_variable(user) or str(user).split(":")[0].strip() not in ("0", "root")):
        found.add("user")
    read_only = service.get("read_only")
    if read_only is True or _variable(read_only) or (isinstance(read_only, str) and read_only.strip().lower() in _TRUE):
        found.add("read_only")
    drops = [str(c).strip().upper().removeprefix("CAP_") for c in _items(service.get("cap_drop"))]
    if "ALL" in drops or any(_variable(c) for c in drops):
        found.add("capabilities")
    for entry in _items(service.get("security_opt")):
        match = re.fullmatch(r"\s*no-new-privileges\s*(?:[:=]\s*(\S+))?\s*", str(entry), re.IGNORECASE)
        if match and (match.group(1) is None or match.group(1).lower() in ("1", "t", "true") or _variable(match.group(1))):
            found.add("no_new_privileges")
    deploy = service.get("deploy")
    resources = deploy.get("resources") if isinstance(deploy, dict) else None
    limits = resources.get("limits") if isinstance(resources, dict) else None
    limits = limits if isinstance(limits, dict) else {}
    if all(service.get(short) is not None or limits.get(long) is not None
           for short, long in (("mem_limit", "memory"), ("cpus", "cpus"), ("pids_limit", "pids"))):
        found.add("resources")
    return found


def _load_all(text: str) -> list:
    error: Exception | None = None
    for attempt in _spellings(text):
        try:
            return [_plain(d) for d in YAML(typ="rt").load_all(attempt)]
        except Exception as exc:
            error = exc
    raise AssertionError(f"the output does not load: {error}")


def _extended(name: str, services: dict, seen: tuple[str, ...] = ()) -> dict:
    """A service with a same-file `extends` base merged under it (what Compose runs)."""
    service = services.get(name)
    if not isinstance(service, dict):
        return {}
    extends = service.get("extends")
    base_name = extends if isinstance(extends, str) else extends.get("service") if isinstance(extends, dict) and "file" not in extends else None
    if not isinstance(base_name, str) or base_name in seen or base_name not in services:
        return service
    return {**_extended(base_name, services, (*seen, name)), **service}


def unreported(result) -> list[str]:
    """`service: control` for every control a service of the output lacks without a Skip
    saying why (a hardening run applies each control or reports why not)."""
    skipped = {(s.service, s.control) for s in result.skips}
    missing = []
    for data in _load_all(result.text):
        services = data.get("services") if isinstance(data, dict) else None
        if not isinstance(services, dict):
            continue
        for name in services:
            have = controls_in_place(_extended(name, services))
            missing += [f"{name}: {c}" for c in CONTROLS if c not in have and (name, c) not in skipped]
    return missing
