"""Reading a Compose text: byte facts, documents, the round-trip tree with positions, the
services and where they are written, and a second, independent plain reader; and
`transform`, a text edited as plain mappings and lists and dumped again.

The original text is kept as written; what ruamel.yaml gets is a normalised copy (no BOM,
LF line endings, a final newline, tabs in trailing blanks turned to spaces) with exactly
the same lines, so line numbers from the tree are line numbers in the file. With
`hardener.rewrite`, this package is the only code that touches ruamel.yaml.
"""

from ..textfacts import TextFacts, join_facts, split_documents, split_facts
from .plain import load_data, load_one, safe_load_all, text_positions
from .read import (Document, check_expansion, detect_indent, dump, key_line, load_tree, loadable, make_yaml, merge_position,
                   own_keys, parse, plain, positions, scalar, value_position)
from .services import Layout, layout, model, service_names, services
from .transform import transform

__all__ = [
    "Document", "Layout", "TextFacts", "check_expansion", "detect_indent", "join_facts", "key_line", "layout", "load_data",
    "dump", "load_tree", "loadable", "make_yaml", "merge_position", "model", "own_keys", "parse", "plain", "positions",
    "load_one", "safe_load_all", "scalar", "text_positions", "service_names", "services", "split_documents", "split_facts", "transform",
    "value_position",
]
