"""`schema.gained`: the errors a change brings in, found by validating only what differs.
It must find every error that validating both whole documents finds, and nothing that
is not an error of the output."""

from __future__ import annotations

import copy
import json
import random

import pytest

from hardener import schema

BEFORE = {
    "name": "shop",
    "services": {
        "web": {"image": "nginx", "ports": ["80:80"], "x-note": 1},
        "db": {"image": "postgres", "environment": {"A": "1"}, "bogus": True},  # an error already there
        "cache": {"image": "redis"},
    },
    "volumes": {"data": {}},
}

# (what the change does, the error it must bring in, or None)
CHANGES = [
    (lambda d: d["services"]["web"].update(cpus=[]), "services/web/cpus"),
    (lambda d: d["services"]["web"].update(read_only={}), "services/web/read_only"),
    (lambda d: d["services"]["cache"].update(cap_drop="ALL"), "services/cache/cap_drop"),
    (lambda d: d["services"]["cache"].update(security_opt=["no-new-privileges:true"], user="1000"), None),
    (lambda d: d["services"]["db"].update(tmpfs=[1]), "services/db/tmpfs"),
    (lambda d: d["services"].update(extra={"image": "x", "mem_limit": []}), "services/extra/mem_limit"),
    (lambda d: d.update(volumes={"data": {"driver": 3}}), "volumes/data/driver"),
    (lambda d: d.update(networks=["a"]), "networks"),
    (lambda d: d["services"]["web"].pop("ports"), None),
]


@pytest.mark.parametrize("index", range(len(CHANGES)))
def test_gained_finds_what_whole_documents_find(index: int):
    change, path = CHANGES[index]
    after = copy.deepcopy(BEFORE)
    change(after)
    whole = schema.errors(after) - schema.errors(BEFORE)
    found = schema.gained(BEFORE, after)
    assert whole <= found <= schema.errors(after)
    assert (path is None) == (not found)
    assert path is None or any(e.startswith(path + ":") for e in found), found


def test_a_new_unknown_key_beside_an_old_one_is_found():
    """Whole documents hide it (the service had an unknown key already: same error text);
    the cut-down service holds only the new key."""
    after = copy.deepcopy(BEFORE)
    after["services"]["db"]["hardened"] = True
    assert schema.errors(after) - schema.errors(BEFORE) == set()
    assert schema.gained(BEFORE, after) == {"services/db: unevaluatedProperties"}


def test_random_changes_to_corpus_like_services():
    """Random keys and values on random services: never an error missed, never one
    that is not the output's."""
    rng = random.Random(7)
    values = [True, "x", 1, 0.5, [], ["a"], {}, {"a": 1}, None, "1000:1000", ["ALL"], [1], "256m"]
    keys = ["user", "read_only", "tmpfs", "cap_add", "cap_drop", "security_opt", "mem_limit", "cpus",
            "pids_limit", "image", "ports", "x-harden", "nonsense", "deploy", "environment"]
    for _ in range(300):
        after = copy.deepcopy(BEFORE)
        for _ in range(rng.randint(1, 4)):
            service = after["services"][rng.choice(sorted(after["services"]))]
            service[rng.choice(keys)] = copy.deepcopy(rng.choice(values))
        whole = schema.errors(after) - schema.errors(BEFORE)
        found = schema.gained(BEFORE, after)
        assert whole <= found <= schema.errors(after), (after, whole, found)


def test_a_schema_that_ties_keys_together_validates_whole_services(monkeypatch):
    spec = json.loads(schema.schema_text())
    spec["$defs"]["service"]["dependentRequired"] = {"cpus": ["image"]}
    monkeypatch.setattr(schema, "schema_text", lambda: json.dumps(spec))
    schema.keywise.cache_clear()
    try:
        assert schema.keywise() is False
        spec["$defs"]["service"].pop("dependentRequired")
        spec["$defs"]["container_spec"]["not"] = {"required": ["mem_limit", "mem_reservation"]}
        schema.keywise.cache_clear()
        assert schema.keywise() is False
        spec["$defs"]["container_spec"].pop("not")
        schema.keywise.cache_clear()
        assert schema.keywise() is True
    finally:
        schema.keywise.cache_clear()


def test_whole_services_when_keys_are_not_judged_alone():
    before = {"services": {"a": {"image": "x", "bogus": 1}, "b": {"image": "y"}}}
    after = copy.deepcopy(before)
    after["services"]["a"]["cpus"] = 1
    old, new = schema._differing(before, after, keys=False)
    assert new == {"services": {"a": after["services"]["a"]}} and old == {"services": {"a": before["services"]["a"]}}
    old, new = schema._differing(before, after, keys=True)
    assert new == {"services": {"a": {"cpus": 1}}} and old == {"services": {"a": {}}}
