"""user.plan: a non-root user where none is set; root and privileged services skipped."""

from __future__ import annotations

import pytest

from hardener.passes import user

SET = [("set", "user", "1000:1000")]

CASES = {
    "missing": ({"image": "example/app"}, SET),
    "build-only": ({"build": "."}, SET),
    "name-kept": ({"image": "example/app", "user": "app"}, []),
    "uid-kept": ({"image": "example/app", "user": "1000"}, []),
    "number-kept": ({"image": "example/app", "user": 4242}, []),
    "variable-kept": ({"image": "example/app", "user": "${UID}:${GID}"}, []),
    "root-name": ({"image": "example/app", "user": "root"}, [("skip", "runs as root")]),
    "root-0:0": ({"image": "example/app", "user": "0:0"}, [("skip", "runs as root")]),
    "root-0": ({"image": "example/app", "user": "0"}, [("skip", "runs as root")]),
    "root-int-0": ({"image": "example/app", "user": 0}, [("skip", "runs as root")]),
    "root-with-group": ({"image": "example/app", "user": "root:staff"}, [("skip", "runs as root")]),
    "privileged-bool": ({"image": "example/app", "privileged": True}, [("skip", "privileged")]),
    "privileged-string-true": ({"image": "example/app", "privileged": "true"}, [("skip", "privileged")]),
    "privileged-yes": ({"image": "example/app", "privileged": "yes"}, [("skip", "privileged")]),
    "privileged-on": ({"image": "example/app", "privileged": "on"}, [("skip", "privileged")]),
    "privileged-TRUE": ({"image": "example/app", "privileged": "TRUE"}, [("skip", "privileged")]),
    "privileged-false": ({"image": "example/app", "privileged": False}, SET),
    "privileged-no": ({"image": "example/app", "privileged": "no"}, SET),
    "privileged-off": ({"image": "example/app", "privileged": "off"}, SET),
    "privileged-variable": ({"image": "example/app", "privileged": "${PRIV}"}, SET),
    "x-harden-user": ({"image": "example/app", "x-harden": {"user": "4242:4242"}}, [("set", "user", "4242:4242")]),
    "image-knowledge": ({"image": "postgres:16"}, [("set", "user", "999:999")]),
    "null-user-is-missing": ({"image": "example/app", "user": None}, SET),
}


@pytest.mark.parametrize("data, expected", CASES.values(), ids=CASES.keys())
def test_user_plan(check_plan, data, expected):
    check_plan(user, data, expected)


def test_inherited_user_counts_as_set(check_plan):
    """A user that comes through `<<:` is the author's (own keys exclude it)."""
    check_plan(user, {"image": "example/app", "user": "app"}, [], own=frozenset({"image"}))
