"""The short way to a patch (`rewrite.splice`): new keys inserted without dumping the tree.

It must write exactly what the long way (two dumps and `render.patch`) writes, on every
fixture here and, in the corpus tier, on every corpus file; it must be taken for most
documents (else it saves nothing); and it must step aside where the text is written in a
way it does not follow.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import corpus_gate
from hardener import core, document
from hardener.core import harden_text
from hardener.model import Change, Op
from hardener.profile import load_profile
import hardener.rewrite as rewrite_module
from hardener.rewrite import splice

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASELINE = load_profile("baseline")


def both_ways(text: str, monkeypatch) -> tuple[object, object, list[str]]:
    """(result by the short ways, result the long way only, per rewritten document the way
    it took: "short", "per service" (some services patched alone) or "long")."""
    taken: list[str] = []
    real_split, real_per_service, real_rewrite = splice.split, rewrite_module._per_service, core.rewrite

    def split(*args, **kwargs):
        found = real_split(*args, **kwargs)
        taken.append("long" if found is None else "short" if not found[1] else "per service")
        return found

    def per_service(*args, **kwargs):
        edits = real_per_service(*args, **kwargs)
        if edits is None:
            taken[-1] = "long"
        return edits

    with monkeypatch.context() as patch:
        patch.setattr(splice, "split", split)
        patch.setattr(rewrite_module, "_per_service", per_service)
        short = harden_text(text, BASELINE)
    with monkeypatch.context() as patch:
        patch.setattr(core, "rewrite", functools.partial(real_rewrite, short=False))
        long = harden_text(text, BASELINE)
    return short, long, taken


def same(short, long) -> bool:
    return (short.status, short.text, short.message) == (long.status, long.text, long.message)


def test_both_ways_write_the_same_on_every_fixture(monkeypatch):
    paths = sorted(FIXTURES.rglob("*.y*ml"))
    assert len(paths) > 50
    taken: list[str] = []
    for path in paths:
        short, long, used = both_ways(path.read_text(encoding="utf-8"), monkeypatch)
        assert same(short, long), path
        taken += used
    assert taken.count("short") >= len(taken) // 2, taken  # the short way is the usual one
    assert {"short", "per service", "long"} <= set(taken)  # each way was compared here


@pytest.mark.corpus
def test_both_ways_write_the_same_on_every_corpus_file(monkeypatch):
    paths = corpus_gate.corpus_files()
    if not paths:
        pytest.skip(f"corpus not found at {corpus_gate.CORPUS} (it sits beside the project in ../shared/corpus)")
    taken: list[str] = []
    differ = []
    for path in paths:
        short, long, used = both_ways(path.read_text(encoding="utf-8", errors="replace"), monkeypatch)
        if not same(short, long):
            differ.append(path.name)
        taken += used
    assert differ == []
    assert taken.count("short") >= 0.8 * len(taken), f"short way taken for {taken.count('short')} of {len(taken)} documents"
    assert taken.count("long") <= 0.05 * len(taken), f"long way taken for {taken.count('long')} of {len(taken)} documents"


def harden(text: str) -> str:
    return harden_text(text, BASELINE).text


def test_new_keys_go_below_the_last_value_and_its_commented_out_entries():
    text = ("services:\n  web:\n    image: example/app:1.0  # pinned\n    ports:\n      - \"80:80\"\n"
            "    # - \"443:443\"\n\n  # the database\n  db:\n    image: postgres:16\n")
    out = harden(text).split("\n")
    at = out.index("    # - \"443:443\"")
    assert out[at - 1] == "      - \"80:80\""
    assert out[at + 1].startswith("    user: ")  # the first new key, after the commented-out entry
    header = out.index("  # the database")
    assert out[header - 1] == "" and out[header - 2].startswith("    pids_limit:")  # above the blank line and the header comment


def test_the_keys_are_written_at_the_column_and_in_the_list_style_of_the_file():
    text = "services:\n    web:\n        image: nginx:1.25\n        ports:\n        - 80:80\n"
    out = harden(text)
    assert "\n        cap_drop:\n        - ALL\n" in out
    assert "\n        security_opt:\n        - no-new-privileges:true\n" in out


def insertions(text: str, changes: list[Change]):
    _, documents = document.parse(text)
    doc = documents[0]
    return splice.insertions(doc, document.services(doc), changes)


USER = Change("user", "web", ("user",), Op.SET, "1000:1000", "")
CAPS = Change("cap_drop", "web", ("cap_drop",), Op.ADD, ("ALL",), "")


def test_the_insertion_is_the_lines_the_long_way_writes():
    found = insertions("services:\n  web:\n    image: busybox\n  db:\n    image: busybox\n", [USER, CAPS])
    assert found == [(3, 3, ['    user: "1000:1000"', "    cap_drop:", "      - ALL"])]


@pytest.mark.parametrize(
    "text",
    [
        "services:\n  web: {image: busybox}\n",  # a flow service
        "services: {web: {image: busybox}}\n",
        "x-a: &a\n  image: busybox\nservices:\n  web:\n    init: true\n    <<: *a\n",  # a merge key written last
        "services:\n  web:\n    image: busybox\n    cap_drop: [NET_RAW]\n",  # a key it extends
        "services:\n  web:\n    image: busybox\n    command: |\n      run\n",  # a block scalar last
        "services:\n  web:\n    image: busybox\n    command: \"a\n      # not a comment\n      b\"\n",  # a quoted value over lines
        "services:\n  web:\n    image: busybox\n    command: plain words\n      over two lines\n",
        "services:\n  web:\n    image: busybox\n    command: [\"true\"]\n    # after a flow list\n",
        "x-s: &s\n  image: busybox\nservices:\n  web: *s\n",  # an alias
    ],
    ids=["flow-service", "flow-services", "merge", "existing-key", "block-scalar", "quoted-over-lines", "plain-over-lines",
         "comment-after-flow", "alias"],
)
def test_the_long_way_is_taken_where_the_short_way_does_not_follow(text: str, monkeypatch):
    assert insertions(text, [USER, CAPS]) is None
    short, long, _ = both_ways(text, monkeypatch)
    assert same(short, long)


def test_each_set_of_new_keys_is_dumped_once_and_equal_values_written_differently_stay_apart():
    _, documents = document.parse("services:\n  web:\n    image: busybox\n")
    doc = documents[0]
    written = [splice._new_keys(doc, [Change("resources", "web", ("cpus",), Op.SET, value, "")]) for value in (1, 1.0, True, 1)]
    assert written[:3] == [["cpus: 1"], ["cpus: 1.0"], ["cpus: true"]]
    assert written[3] is written[0]  # the second time from the cache


def test_a_service_that_merges_an_anchor_first_takes_the_short_way(monkeypatch):
    text = "x-a: &a\n  restart: always\nservices:\n  web:\n    <<: *a\n    image: busybox\n  # next\n  db:\n    image: busybox\n"
    assert insertions(text, [USER, CAPS]) == [(6, 6, ['    user: "1000:1000"', "    cap_drop:", "      - ALL"])]
    short, long, taken = both_ways(text, monkeypatch)
    assert same(short, long) and taken == ["short"]


@pytest.mark.parametrize(
    "last, short_way",
    [
        ('"80:80"  # http', True),
        ("'it''s'", True),
        ('"a\\"" # escaped quote inside', True),
        ('"a\\"\n        # b"', False),  # closed on the next line, after what looks like a comment
        ("'it''\n        # s'", False),
        ('"a"#not a comment', False),
    ],
)
def test_a_quoted_last_value_takes_the_short_way_only_where_it_closes_on_its_line(last: str, short_way: bool, monkeypatch):
    text = f"services:\n  web:\n    image: busybox\n    labels:\n      - {last}\n"
    if short_way:
        assert insertions(text, [USER]) == [(5, 5, ['    user: "1000:1000"'])]
        short, long, _ = both_ways(text, monkeypatch)
        assert same(short, long)
    else:
        assert insertions(text, [USER]) is None


def test_a_service_the_per_service_way_cannot_place_sends_the_document_the_long_way(monkeypatch):
    """The per-service patch edits the tree before it can fail; then the document is read
    again and takes the long way, with the same result as the long way alone."""
    from hardener.rewrite import render

    text = "services:\n  web:\n    image: busybox\n    cap_drop: [NET_RAW]\n    command: |\n      run\n  db:\n    image: busybox\n    command: |\n      run\n"
    calls = []
    real = render.patch

    def failing_once(*args):
        calls.append(1)
        if len(calls) == 2:  # the second service of the per-service way
            raise core.RefusedError("cannot place the change")
        return real(*args)

    expected = both_ways(text, monkeypatch)[1]
    monkeypatch.setattr(render, "patch", failing_once)
    result = harden_text(text, BASELINE)
    assert len(calls) == 3  # two per service (the second failed), then the whole document once
    assert (result.status, result.text) == (expected.status, expected.text)
