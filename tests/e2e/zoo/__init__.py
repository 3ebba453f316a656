"""The zoo: small local images that behave like popular image classes the image knowledge
(profiles/images.yaml) does not know, each with a Compose file as a user writes it and a job
check that passes on the original stack.

* ``recipes`` - the images (busybox-static root filesystems, tags ``zoo/<name>:1``).
* ``build``   - builds them, cached by a hash of each recipe (image label).
* ``stacks``  - compose.yaml + job check per stack (``STACKS``).
* ``run``     - up / job / down, ``harden fix --format json --report``, the whole cycle
  (``zoo_run``).

Needs the ``tests/e2e`` directory on ``sys.path`` (for ``images``), as the e2e tests have.
"""

from __future__ import annotations

from . import build, recipes
from .run import CONTROLS, FixResult, JobFailed, RunResult, ZooOutcome, blame, harden_fix, run_stack, zoo_run
from .stacks import BY_NAME, STACKS, ZooStack


def ensure_images() -> dict[str, str]:
    """Build the zoo images that are missing or outdated; {tag: recipe hash}."""
    return build.ensure(recipes.RECIPES)


__all__ = ["BY_NAME", "CONTROLS", "STACKS", "FixResult", "JobFailed", "RunResult", "ZooOutcome", "ZooStack",
           "blame", "ensure_images", "harden_fix", "run_stack", "zoo_run"]
