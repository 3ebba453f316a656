"""no_new_privileges.plan: security_opt gains no-new-privileges:true unless set."""

from __future__ import annotations

import pytest

from hardener.passes import no_new_privileges

ADD = [("add", "security_opt", ("no-new-privileges:true",))]


def opts(*entries):
    return {"image": "example/app", "security_opt": list(entries)}


CASES = {
    "missing": ({"image": "example/app"}, ADD),
    "null": ({"image": "example/app", "security_opt": None}, ADD),
    "empty": (opts(), ADD),
    "other-entries": (opts("label:disable", "seccomp:unconfined"), ADD),
    "bare": (opts("no-new-privileges"), []),
    "colon-true": (opts("no-new-privileges:true"), []),
    "equals-true": (opts("no-new-privileges=true"), []),
    "go-bool-1": (opts("no-new-privileges:1"), []),
    "go-bool-t": (opts("no-new-privileges:t"), []),
    "go-bool-TRUE": (opts("no-new-privileges:TRUE"), []),
    "space-after-colon": (opts("no-new-privileges: true"), []),
    "upper-case-key": (opts("NO-NEW-PRIVILEGES:true"), []),
    "after-others": (opts("label:disable", "no-new-privileges:true"), []),
    "variable": (opts("no-new-privileges:${NNP}"), []),
    "false-kept": (opts("no-new-privileges:false"), [("skip", "no-new-privileges:false set explicitly")]),
    "go-bool-0": (opts("no-new-privileges:0"), [("skip", "no-new-privileges:false set explicitly")]),
    "string-not-a-list": ({"image": "example/app", "security_opt": "no-new-privileges:true"}, [("skip", "security_opt is not a list")]),
}


@pytest.mark.parametrize("data, expected", CASES.values(), ids=CASES.keys())
def test_no_new_privileges_plan(check_plan, data, expected):
    check_plan(no_new_privileges, data, expected)
