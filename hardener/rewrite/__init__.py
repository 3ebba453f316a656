"""Rewriting one YAML document: carry out planned changes as a minimal text patch.

`rewrite(doc, changes)` is the only way the rest of the package changes text. Inside,
`edit.apply` carries the changes out on the round-trip tree (the only code that mutates
it), and the text follows one of three ways, all giving the same text:

- short (`splice`): a service that only gains keys gets them inserted into its lines,
  dumped alone;
- per service: a service written in a way the short way does not follow (a key it
  extends, a block scalar last, ...) and holding no anchor, alias or merge key is dumped
  alone before and after its edit, and `render.patch` splices the difference into its own
  lines;
- long: otherwise R0 = dump of the whole unedited tree, R1 = dump of the edited tree, and
  `render.patch` splices the R0 → R1 difference into the document's text.

Every untouched line stays as written. The caller checks the result (`safety`) before
anyone writes it.
"""

from __future__ import annotations

from typing import Any, Iterable

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..document import Document, dump, load_tree, merge_position, services
from ..model import Change, HardenError
from . import edit, render, splice


def _dump(doc: Document, node: Any = None) -> str:
    return dump(doc.tree if node is None else node, doc.indent)


def rewrite(doc: Document, changes: Iterable[Change], unterminated: bool = False, short: bool = True) -> str:
    """The document's text with `changes` carried out. The document's tree is edited in
    place: a document is rewritten once. `unterminated`: this document ends the file and
    the file has no final line break (see `edit.apply`). `short`: take the short and the
    per-service ways where they apply (the same text; False: the long way only)."""
    changes = list(changes)
    section = services(doc)
    found = splice.split(doc, section, changes) if short and section is not None else None
    if found is not None:
        inserts, rest = found
        apart = set(rest)
        edits = _per_service(doc, section, [c for c in changes if c.service in apart], rest, unterminated) if rest else []
        if edits is not None:
            edit.apply(section, [c for c in changes if c.service not in apart], unterminated)  # the tree as the output means it
            return splice.spliced(doc, inserts + edits)
        if doc.tree is None:  # a way failed after editing: start again from the text
            doc.tree = load_tree(doc.text, doc.indent, doc.first_line)
            section = services(doc)
    r0 = _dump(doc)
    edit.apply(section, changes, unterminated)
    return render.patch(doc.text, r0, _dump(doc))


def _per_service(doc: Document, section: CommentedMap, changes: list[Change], names: list[Any],
                 unterminated: bool = False) -> list[splice.Edit] | None:
    """Each named service patched in its own lines, or None (the long way). Where a patch
    fails after some service was edited, `doc.tree` is set to None: the caller reads the
    text again."""
    order = splice.order(section)
    ranges = []
    for name in names:
        where = splice.service_range(doc, section, order, name)
        if where is None or _shared(section[name]):
            return None
        ranges.append((name, where))
    mine: dict[Any, list[Change]] = {}
    for change in changes:
        mine.setdefault(change.service, []).append(change)
    out: list[splice.Edit] = []
    for name, (start, stop) in ranges:
        inner = CommentedMap([(name, section[name])])  # at the depth it has in the file, so the columns agree
        if name in section.ca.items:  # the comment on the service's key line
            inner.ca.items[name] = section.ca.items[name]
        alone = CommentedMap([("services", inner)])
        r0 = _dump(doc, alone)
        last = unterminated and name == order[0][-1]  # a block scalar it ends with keeps its meaning
        edit.apply(inner, mine[name], last)
        try:
            patched = render.patch("\n".join(doc.lines[start:stop]) + "\n", r0, _dump(doc, alone))
        except HardenError:
            doc.tree = None
            return None
        out.append((start, stop, patched.split("\n")[:-1]))
    return out


def _shared(node: Any, depth: int = 0) -> bool:
    """True where the service holds an anchor, an alias or a merge key (its dump alone
    would write them differently), or is nested too deep to look through."""
    if depth > 50:
        return True
    if getattr(getattr(node, "anchor", None), "value", None):
        return True
    if isinstance(node, CommentedMap):
        return merge_position(node) is not None or any(_shared(v, depth + 1) for v in node.values())
    if isinstance(node, CommentedSeq):
        return any(_shared(v, depth + 1) for v in node)
    return False
