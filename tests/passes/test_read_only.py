"""read_only.plan: a read-only root with tmpfs where the service must write."""

from __future__ import annotations

import pytest

from hardener.passes import read_only

TMP = "/tmp:size=64m,mode=1777,noexec,nosuid,nodev"  # no user known to the pass: no uid/gid
TMP_1000 = "/tmp:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev"
SET = ("set", "read_only", True)

CASES = {
    "missing": ({"image": "example/app"}, [SET, ("add", "tmpfs", (TMP,))]),
    "tmpfs-owned-by-the-user": ({"image": "example/app", "user": "1000:1000"}, [SET, ("add", "tmpfs", (TMP_1000,))]),
    "tmpfs-owned-by-uid-only": ({"image": "example/app", "user": "1000"}, [SET, ("add", "tmpfs", (TMP_1000,))]),
    "named-user-no-ids": ({"image": "example/app", "user": "app"}, [SET, ("add", "tmpfs", (TMP,))]),
    "true-kept": ({"image": "example/app", "read_only": True}, []),
    "string-yes-kept": ({"image": "example/app", "read_only": "yes"}, []),
    "false-kept": ({"image": "example/app", "read_only": False}, [("skip", "read_only: false set explicitly")]),
    "string-no": ({"image": "example/app", "read_only": "no"}, [("skip", "read_only: no set explicitly")]),
    "string-off": ({"image": "example/app", "read_only": "off"}, [("skip", "read_only: off set explicitly")]),
    "string-false": ({"image": "example/app", "read_only": "false"}, [("skip", "set explicitly")]),
    "variable": ({"image": "example/app", "read_only": "${RO:-true}"}, [("skip", "through a variable")]),
    "volume-on-tmp": ({"image": "example/app", "volumes": ["cache:/tmp"]}, [SET]),
    "bind-on-tmp-with-options": ({"image": "example/app", "volumes": ["./scratch:/tmp:rw"]}, [SET]),
    "long-tmpfs-volume-on-tmp": ({"image": "example/app", "volumes": [{"type": "tmpfs", "target": "/tmp"}]}, [SET]),
    "variable-target-default": ({"image": "example/app", "volumes": ["data:${DIR:-/tmp}"]}, [SET]),
    "tmpfs-on-tmp-already": ({"image": "example/app", "tmpfs": ["/tmp"]}, [SET]),
    "tmpfs-string-on-tmp": ({"image": "example/app", "tmpfs": "/tmp/"}, [SET]),
    "tmpfs-variable": ({"image": "example/app", "tmpfs": "${TMPFS}"}, [SET]),
    "tmpfs-without-noexec": (
        {"image": "example/app", "tmpfs": ["/run:size=1m"]},
        [SET, ("skip", "lacks noexec/nosuid"), ("add", "tmpfs", (TMP,))],
    ),
    "image-data-path-unmounted": ({"image": "grafana/grafana:11"}, [("skip", "mount a volume there first")]),
    "image-data-path-mounted": (
        {"image": "grafana/grafana:11", "volumes": ["grafana:/var/lib/grafana"]},
        [SET, ("add", "tmpfs", (TMP,))],
    ),
    "x-harden-tmpfs-with-read-only-set": (
        {"image": "example/app", "read_only": True, "x-harden": {"tmpfs": ["/cache:size=1m,noexec,nosuid"]}},
        [("add", "tmpfs", ("/cache:size=1m,noexec,nosuid",))],
    ),
    "x-harden-tmpfs-wins-for-its-path": (
        {"image": "example/app", "x-harden": {"tmpfs": ["/tmp:size=8m,noexec,nosuid"]}},
        [SET, ("add", "tmpfs", ("/tmp:size=8m,noexec,nosuid",))],
    ),
}


@pytest.mark.parametrize("data, expected", CASES.values(), ids=CASES.keys())
def test_read_only_plan(check_plan, data, expected):
    check_plan(read_only, data, expected)


def test_inherited_false_is_kept(check_plan):
    check_plan(read_only, {"image": "example/app", "read_only": False}, [("skip", "set explicitly")], own=frozenset({"image"}))
