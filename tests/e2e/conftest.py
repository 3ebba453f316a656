"""The `engine` fixture of the real-engine tests: a reachable Docker engine and the local images.

No engine reachable -> the engine tests skip with the reason, unless HARDEN_REQUIRE_ENGINE=1
(set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)


def _no_engine(reason: str) -> None:
    message = f"no Docker engine reachable: {reason}"
    if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
        pytest.fail(message + " (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def engine() -> dict[str, str]:
    """The local images by key (busybox, nginx, redis, postgres, official-*); skips without an engine."""
    ok, reason = images.engine_available()
    if not ok:
        _no_engine(reason)
    try:
        built = images.ensure_images()
        official = images.ensure_official_like()
    except Exception as exc:  # build needs root, debootstrap, a Debian mirror
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            raise
        pytest.skip(f"cannot build the e2e images: {exc}")
    return {**built, **{f"official-{k}": v for k, v in official.items()}}
