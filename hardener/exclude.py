"""What directory discovery leaves out, as ruff does.

* `DEFAULT_EXCLUDE`: version-control, virtualenv, cache and dependency directories
  (`node_modules`, `.venv`, ...). `--exclude` replaces this list, `--extend-exclude` adds to
  it. A pattern is a glob (`fnmatch`); one without a `/` matches a file or directory name
  anywhere, one with a `/` matches the path relative to the working directory (or an
  absolute path). Values may be comma-separated.
* `.gitignore`: inside a git repository (a `.git` at or above the directory walked), the
  `.gitignore` files from the repository root down, and `.git/info/exclude`, are honoured
  with git's rules (negation, anchoring, `dir/`, `**`); `--no-respect-gitignore` turns that off.
* A path named on the command line is always processed, whatever the patterns say, unless
  `--force-exclude` (for pre-commit and editors, which pass every file by name).

A directory left out is never entered (nothing under it is listed or read).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".mypy_cache", ".nox", ".pants.d",
    ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".terraform", ".tox", ".venv", "__pypackages__",
    "buck-out", "node_modules", "site-packages", "venv",
)


def split(values: Optional[Iterable[str]]) -> list[str]:
    """Repeated and comma-separated option values as one list."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


@dataclass
class Exclusion:
    """The patterns in force, and what they left out (for `--verbose`)."""

    patterns: tuple[str, ...] = DEFAULT_EXCLUDE
    respect_gitignore: bool = True
    force: bool = False  # also apply to the paths given on the command line
    cwd: str = field(default_factory=os.getcwd)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    _ignores: dict[str, object] = field(default_factory=dict, repr=False)  # directory -> its gitignore spec or None
    _roots: dict[str, Optional[str]] = field(default_factory=dict, repr=False)  # directory -> repository root

    @classmethod
    def from_options(cls, exclude: Optional[Iterable[str]] = None, extend: Optional[Iterable[str]] = None,
                     respect_gitignore: bool = True, force: bool = False) -> "Exclusion":
        base = split(exclude) if exclude else list(DEFAULT_EXCLUDE)
        return cls(tuple(base + split(extend)), respect_gitignore, force)

    # --- patterns -----------------------------------------------------------------------

    def _pattern(self, path: str, whole: bool = False) -> Optional[str]:
        """The pattern that leaves `path` out. A walk asks about each entry by its name
        (`whole` False); a path named on the command line (`--force-exclude`) is left out
        when any of its parts is."""
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute, self.cwd)
        names = Path(os.path.normpath(path)).parts if whole else (os.path.basename(os.path.normpath(path)),)
        for pattern in self.patterns:
            if "/" not in pattern.rstrip("/"):
                if any(fnmatch.fnmatchcase(name, pattern.rstrip("/")) for name in names):
                    return pattern
                continue
            wanted = pattern.rstrip("/")
            for candidate in (Path(relative).as_posix(), Path(absolute).as_posix()):
                if fnmatch.fnmatchcase(candidate, wanted) or fnmatch.fnmatchcase(candidate, wanted.lstrip("./")):
                    return pattern
        return None

    # --- .gitignore ---------------------------------------------------------------------

    def _root(self, directory: str) -> Optional[str]:
        """The repository root above `directory` (the nearest directory holding `.git`)."""
        if directory in self._roots:
            return self._roots[directory]
        root: Optional[str] = None
        here = Path(directory)
        for folder in (here, *here.parents):
            try:
                if (folder / ".git").exists():
                    root = str(folder)
                    break
            except OSError:
                break
        self._roots[directory] = root
        return root

    def _spec(self, directory: str, root: str) -> object:
        if directory not in self._ignores:
            lines: list[str] = []
            sources = [os.path.join(directory, ".gitignore")]
            if directory == root:
                sources.insert(0, os.path.join(root, ".git", "info", "exclude"))
            for source in sources:
                try:
                    with open(source, encoding="utf-8", errors="replace") as handle:
                        lines += handle.read(1 << 20).splitlines()
                except OSError:
                    continue
            spec = None
            if lines:
                import pathspec

                spec = pathspec.GitIgnoreSpec.from_lines(lines)
            self._ignores[directory] = spec
        return self._ignores[directory]

    def _ignored(self, path: str, is_dir: bool) -> bool:
        absolute = os.path.abspath(path)
        root = self._root(os.path.dirname(absolute))
        if root is None:
            return False
        verdict: Optional[bool] = None
        folder = os.path.dirname(absolute)
        chain = []
        while True:
            chain.append(folder)
            if folder == root or os.path.dirname(folder) == folder:
                break
            folder = os.path.dirname(folder)
        for directory in reversed(chain):  # the root's .gitignore first, the deepest last: the deepest decides
            spec = self._spec(directory, root)
            if spec is None:
                continue
            relative = Path(os.path.relpath(absolute, directory)).as_posix() + ("/" if is_dir else "")
            result = spec.check_file(relative)  # type: ignore[attr-defined]
            if result.include is not None:
                verdict = result.include
        return bool(verdict)

    # --- the decision ---------------------------------------------------------------------

    def why(self, path: str, is_dir: bool, given: bool = False) -> Optional[str]:
        """Why `path` is left out, or None (`given`: named on the command line)."""
        pattern = self._pattern(path, whole=given)
        if pattern is not None:
            return f"excluded by {pattern!r}" + (" (default)" if pattern in DEFAULT_EXCLUDE else "")
        if self.respect_gitignore and self._ignored(path, is_dir):
            return "ignored by .gitignore"
        return None

    def skip(self, path: str, is_dir: bool, given: bool = False) -> bool:
        reason = self.why(path, is_dir, given)
        if reason is not None:
            self.excluded.append((os.path.normpath(path), reason))
        return reason is not None


def walk(top: str, recursive: bool, patterns: Iterable[str], exclusion: Optional[Exclusion] = None) -> tuple[list[str], list[str]]:
    """(Compose files under `top` named like `patterns`, sorted; directories that could not
    be listed). Symlinked directories are not entered, `.git` never; with `exclusion`, what
    it leaves out is not entered or listed either. A directory that cannot be listed is
    not ignored: it is returned, and reading it reports why."""
    unlisted: list[str] = []
    found: list[str] = []
    patterns = tuple(patterns)

    def failed(exc: OSError) -> None:
        unlisted.append(exc.filename if isinstance(exc.filename, str) else top)

    for folder, dirs, names in os.walk(top, onerror=failed):
        if recursive:
            kept = [d for d in dirs if d != ".git"]
            if exclusion is not None:
                kept = [d for d in kept if not exclusion.skip(os.path.join(folder, d), True)]
            dirs[:] = sorted(kept)
        else:
            dirs[:] = []
        for name in names:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                path = os.path.join(folder, name)
                if not os.path.isfile(path) or ".git" in Path(path).parts:
                    continue
                if exclusion is not None and exclusion.skip(path, False):
                    continue
                found.append(str(Path(path)))
    return sorted(found), sorted(set(unlisted))
