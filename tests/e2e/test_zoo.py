"""The zoo: stacks behaving like popular image classes the image knowledge does not know.

Each stack (tests/e2e/zoo/stacks.py) is an image built here (tag zoo/<name>:1, absent from
profiles/images.yaml) and a compose.yaml as a user writes it.  The test brings the original
up and proves its job check passes (else the zoo itself is broken), runs `harden fix` with
default options on a copy, brings the hardened copy up and asserts the job check passes
again: hardening must not break what the stack does.  Every project is torn down with
`down -v --remove-orphans`.

`python tests/bench/zoo.py` runs the same cycle and prints the before/after table.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)
import zoo  # noqa: E402  (tests/e2e/zoo/)

pytestmark = pytest.mark.engine


@pytest.fixture(scope="session")
def zoo_images() -> dict[str, str]:
    """The zoo images, built once (cached by recipe hash); skips without an engine unless
    HARDEN_REQUIRE_ENGINE=1, where that is a failure."""
    ok, reason = images.engine_available()
    if not ok:
        message = f"no Docker engine reachable: {reason}"
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            pytest.fail(message + " (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
        pytest.skip(message)
    return zoo.ensure_images()


@pytest.mark.parametrize("stack", zoo.STACKS, ids=lambda s: s.name)
def test_job_still_passes_after_harden_fix(zoo_images, stack: zoo.ZooStack, tmp_path) -> None:
    outcome = zoo.zoo_run(stack, tmp_path)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    for run in (outcome.original, outcome.hardened):
        assert not run.leftovers, f"{run.project}: down -v left {run.leftovers}"
    if not outcome.original.ok:
        pytest.fail(f"the zoo stack itself does not work: {outcome.original.describe()}", pytrace=False)
    if outcome.fix.rc != 0:
        pytest.fail(f"harden fix exit {outcome.fix.rc}: {outcome.fix.stderr[-1000:]}", pytrace=False)
    if not outcome.hardened.ok:
        pytest.fail(
            f"{stack.name} ({stack.behaves_like}) no longer does its job after harden fix\n"
            f"job: {stack.job_doc}\n{outcome.fix.summary()}\n{outcome.hardened.describe()}",
            pytrace=False,
        )
