"""Accounts of an image: `/etc/passwd` and `/etc/group` parsed, and a `user:` value resolved
to numbers the way the engine resolves it when it starts a container.

The engine (runc's user lookup) resolves `User` against the image's own files:

* a name is looked up in passwd (its primary group from there), a group name in group;
* a numeric uid that passwd knows takes that entry's primary gid; one it does not know
  runs with gid 0 (`docker run --user 1234 busybox id` -> `uid=1234 gid=0`);
* an explicit `:group` wins over the primary group.
"""

from __future__ import annotations

from typing import Mapping

#: name -> (uid, gid, home)
Passwd = Mapping[str, tuple[int, int, str]]
#: name -> gid
Groups = Mapping[str, int]

ROOT_NAMES = frozenset({"", "0", "root"})


def _lines(text: str | bytes | None):
    if text is None:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "+", "-")):
            yield line.split(":")


def parse_passwd(text: str | bytes | None) -> dict[str, tuple[int, int, str]]:
    """`name:x:uid:gid:gecos:home:shell` lines -> {name: (uid, gid, home)}.

    Comments, NIS `+`/`-` lines and malformed lines are skipped; the first entry of a name
    wins, as getpwnam() does."""
    entries: dict[str, tuple[int, int, str]] = {}
    for fields in _lines(text):
        if len(fields) < 4 or not fields[0]:
            continue
        try:
            uid, gid = int(fields[2]), int(fields[3])
        except ValueError:
            continue
        if uid < 0 or gid < 0:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.setdefault(fields[0], (uid, gid, home))
    return entries


def parse_group(text: str | bytes | None) -> dict[str, int]:
    """`name:x:gid:members` lines -> {name: gid}; first entry of a name wins."""
    entries: dict[str, int] = {}
    for fields in _lines(text):
        if len(fields) < 3 or not fields[0]:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        if gid >= 0:
            entries.setdefault(fields[0], gid)
    return entries


def by_uid(passwd: Passwd, uid: int) -> tuple[str, tuple[int, int, str]] | None:
    """The first passwd entry with this uid, as getpwuid() finds it."""
    for name, entry in passwd.items():
        if entry[0] == uid:
            return name, entry
    return None


def resolve(user: str, passwd: Passwd | None, groups: Groups | None) -> tuple[int, int] | None:
    """(uid, gid) the engine would run `user` (`name`, `uid`, `name:group`, `uid:gid`) as.

    `passwd` / `groups` are None when the image's files could not be read: then only a
    fully numeric `uid:gid` resolves. An empty user is root (0, 0). None when a name is
    unknown or the value is not a user."""
    text = str(user).strip()
    name, _, group = text.partition(":")
    name, group = name.strip(), group.strip()
    if text == "":
        return (0, 0)
    if not name:
        return None
    primary: int | None
    if name.isdigit():
        uid = int(name)
        if passwd is None:
            primary = None
        else:
            found = by_uid(passwd, uid)
            primary = found[1][1] if found else 0
    else:
        if passwd is None or name not in passwd:
            if name == "root":
                uid, primary = 0, 0
            else:
                return None
        else:
            uid, primary = passwd[name][0], passwd[name][1]
    if group:
        if group.isdigit():
            return (uid, int(group))
        if groups is None or group not in groups:
            return (0, 0) if group == "root" and uid == 0 else None
        return (uid, groups[group])
    return None if primary is None else (uid, primary)


def home(user: str, passwd: Passwd | None) -> str | None:
    """The home directory passwd gives `user` (a name or a uid), else None."""
    if passwd is None:
        return None
    name = str(user).strip().partition(":")[0].strip()
    if name in passwd:
        return passwd[name][2] or None
    if name.isdigit():
        found = by_uid(passwd, int(name))
        return (found[1][2] or None) if found else None
    if name == "":
        found = by_uid(passwd, 0)
        return (found[1][2] or None) if found else None
    return None
