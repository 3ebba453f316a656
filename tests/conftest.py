import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs a running Docker engine")
    config.addinivalue_line("markers", "corpus: runs over ../shared/corpus")
