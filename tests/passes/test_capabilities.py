"""capabilities.plan: cap_drop ALL, cap_add only what the image needs."""

from __future__ import annotations

import pytest

from hardener.passes import capabilities

DROP = ("add", "cap_drop", ("ALL",))

CASES = {
    "missing": ({"image": "example/app"}, [DROP]),
    "all-kept": ({"image": "example/app", "cap_drop": ["ALL"]}, []),
    "all-lower-case": ({"image": "example/app", "cap_drop": ["all"]}, []),
    "all-among-others": ({"image": "example/app", "cap_drop": ["NET_RAW", "ALL"]}, []),
    "partial-extended": ({"image": "example/app", "cap_drop": ["NET_RAW"]}, [DROP]),
    "empty-list": ({"image": "example/app", "cap_drop": []}, [DROP]),
    "variable-item": ({"image": "example/app", "cap_drop": ["${CAP_DROP}"]}, []),
    "string-not-a-list": ({"image": "example/app", "cap_drop": "ALL"}, [("skip", "cap_drop is not a list")]),
    "cap-add-string": ({"image": "example/app", "cap_add": "NET_ADMIN"}, [("skip", "cap_add is not a list")]),
    "cap-add-kept": ({"image": "example/app", "cap_add": ["NET_ADMIN"]}, [DROP]),
    "privileged-bool": ({"image": "example/app", "privileged": True}, [("skip", "privileged")]),
    "privileged-string-true": ({"image": "example/app", "privileged": "true"}, [("skip", "privileged")]),
    "privileged-yes": ({"image": "example/app", "privileged": "yes"}, [("skip", "privileged")]),
    "privileged-on": ({"image": "example/app", "privileged": "on"}, [("skip", "privileged")]),
    "privileged-false": ({"image": "example/app", "privileged": "false"}, [DROP]),
    "image-needs-caps": ({"image": "nginx:1.25"}, [DROP, ("add", "cap_add", ("CHOWN", "SETUID", "SETGID"))]),
    "image-caps-partly-there": (
        {"image": "nginx:1.25", "cap_add": ["cap_chown"]},
        [DROP, ("add", "cap_add", ("SETUID", "SETGID"))],
    ),
    "image-caps-under-cap-add-all": ({"image": "nginx:1.25", "cap_add": ["ALL"]}, [DROP]),
    "author-all-not-loosened": ({"image": "nginx:1.25", "cap_drop": ["ALL"]}, []),
    "x-harden-cap-add": (
        {"image": "example/app", "x-harden": {"cap_add": ["NET_BIND_SERVICE"]}},
        [DROP, ("add", "cap_add", ("NET_BIND_SERVICE",))],
    ),
}


@pytest.mark.parametrize("data, expected", CASES.values(), ids=CASES.keys())
def test_capabilities_plan(check_plan, data, expected):
    check_plan(capabilities, data, expected)
