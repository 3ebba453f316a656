"""`document.transform`, and ruamel.yaml confined to `hardener.document` and `hardener.rewrite`."""

from __future__ import annotations

import ast
from pathlib import Path

from hardener.document import transform

PACKAGE = Path(__file__).resolve().parent.parent / "hardener"


def test_transform_hands_the_tree_to_the_edit_and_dumps_it() -> None:
    text = "services:\n  app:\n    image: 'x:1'  # pinned\n    cap_drop: [ALL]\n"

    def edit(tree) -> None:
        app = tree["services"]["app"]
        app["user"] = "1000:1000"
        app.pop("cap_drop")
        app["tmpfs"] = ["/tmp"]

    out = transform(text, edit)
    assert out == "services:\n  app:\n    image: 'x:1'  # pinned\n    user: 1000:1000\n    tmpfs:\n    - /tmp\n"


def test_transform_of_an_empty_text_hands_none() -> None:
    seen = []
    transform("", seen.append)
    assert seen == [None]


def test_only_document_and_rewrite_import_ruamel() -> None:
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("document/", "rewrite/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name == "ruamel" or name.startswith("ruamel.") for name in names):
                importers.append(f"{relative}:{node.lineno}")
    assert importers == []
