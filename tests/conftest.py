"""Test tiers (markers registered in pyproject.toml):

- default: text-level tests (the core, fixtures, passes, the command line, bad input,
  faults, projects) - `-m "not corpus and not properties and not engine"` runs only these;
- `properties`: generated Compose files (tests/test_properties.py);
- `corpus`: the real-world gate over ../shared/corpus (tests/test_corpus.py);
- `engine`: a real Docker engine - everything under tests/e2e, marked here.

`python -m pytest -q` runs every tier.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent / "e2e"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs a running Docker engine")
    config.addinivalue_line("markers", "corpus: runs over ../shared/corpus")
    config.addinivalue_line("markers", "properties: property-based tests over generated Compose files")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.engine)
