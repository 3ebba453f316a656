"""Rewriting one YAML document: carry out planned changes as a minimal text patch.

`rewrite(doc, changes)` is the only way the rest of the package changes text. Inside:
R0 = dump of the unedited round-trip tree, `edit.apply` carries the changes out on the
tree (the only code that mutates it), R1 = dump of the edited tree, and `render.patch`
splices the R0 → R1 difference into the document's own text, so every untouched line
stays as written. The caller checks the result (`safety`) before anyone writes it.
"""

from __future__ import annotations

import io
from typing import Iterable

from ..document import Document, make_yaml, services
from ..model import Change
from . import edit, render, splice


def _dump(doc: Document) -> str:
    stream = io.StringIO()
    make_yaml(doc.indent).dump(doc.tree, stream)
    return stream.getvalue()


def rewrite(doc: Document, changes: Iterable[Change], unterminated: bool = False, short: bool = True) -> str:
    """The document's text with `changes` carried out. The document's tree is edited in
    place: a document is rewritten once. `unterminated`: this document ends the file and
    the file has no final line break (see `edit.apply`). `short`: where every change only
    adds keys, insert them without dumping the tree (`splice`); same text."""
    changes = list(changes)
    section = services(doc)
    inserts = splice.insertions(doc, section, changes) if short and not unterminated and section is not None else None
    if inserts is not None:
        edit.apply(section, changes)  # the tree as the output means it: planning again reads it
        return splice.spliced(doc, inserts)
    r0 = _dump(doc)
    edit.apply(section, changes, unterminated)
    return render.patch(doc.text, r0, _dump(doc))
