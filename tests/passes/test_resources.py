"""resources.plan: memory, CPU and PID limits in the one form the service / file uses."""

from __future__ import annotations

import pytest

from hardener.passes import resources

SHORT = [("set", "mem_limit", "256m"), ("set", "cpus", 0.5), ("set", "pids_limit", 100)]
DEPLOY = [
    ("set", "deploy.resources.limits.memory", "256M"),
    ("set", "deploy.resources.limits.cpus", 0.5),
    ("set", "deploy.resources.limits.pids", 100),
]


def limits(**values):
    return {"image": "example/app", "deploy": {"resources": {"limits": values}}}


CASES = {
    "missing": ({"image": "example/app"}, {}, SHORT),
    "short-partial": ({"image": "example/app", "mem_limit": "1g"}, {}, SHORT[1:]),
    "short-complete": ({"image": "example/app", "mem_limit": "1g", "cpus": 2, "pids_limit": 50}, {}, []),
    "short-variables-count": ({"image": "example/app", "mem_limit": "${MEM}", "cpus": "${CPUS}", "pids_limit": "${PIDS}"}, {}, []),
    "short-null-is-missing": ({"image": "example/app", "mem_limit": None}, {}, SHORT),
    "deploy-partial": (limits(cpus="1"), {}, [DEPLOY[0], DEPLOY[2]]),
    "deploy-complete": (limits(memory="1G", cpus="1", pids=10), {}, []),
    "deploy-without-limits-short-form": ({"image": "example/app", "deploy": {"replicas": 2}}, {}, SHORT),
    "file-uses-deploy": ({"image": "example/app", "deploy": {"replicas": 2}}, {"file_form": "deploy"}, DEPLOY),
    "file-uses-deploy-no-deploy-yet": ({"image": "example/app"}, {"file_form": "deploy"}, DEPLOY),
    "service-form-wins-over-file": ({"image": "example/app", "cpus": 1}, {"file_form": "deploy"}, [SHORT[0], SHORT[2]]),
    "deploy-not-a-mapping": ({"image": "example/app", "deploy": "${DEPLOY}"}, {"file_form": "deploy"}, [("skip", "deploy is not a mapping")]),
    "inherited-deploy": (
        {"image": "example/app", "deploy": {"replicas": 2}},
        {"file_form": "deploy", "own": frozenset({"image"})},
        [("skip", "deploy is inherited through a merge key")],
    ),
    "short-and-deploy-limits-mixed": ({"image": "example/app", "mem_limit": "1g", **limits(pids=10)}, {}, [SHORT[1]]),
    "x-harden-values": (
        {"image": "example/app", "x-harden": {"memory": "2g", "cpus": 1.5, "pids": 300}},
        {},
        [("set", "mem_limit", "2g"), ("set", "cpus", 1.5), ("set", "pids_limit", 300)],
    ),
}


@pytest.mark.parametrize("data, fields, expected", CASES.values(), ids=CASES.keys())
def test_resources_plan(check_plan, data, fields, expected):
    check_plan(resources, data, expected, **fields)
