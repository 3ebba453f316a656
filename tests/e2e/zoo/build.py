"""Build the zoo images: busybox-static root filesystems imported with ``docker import``.

Each image is a :class:`Recipe` (accounts, files, directories, binaries, image config).
Its tag carries a label with the SHA-256 of the recipe, so an image is rebuilt only when
its recipe changes; a warm call costs one ``docker image inspect`` per image.

Binaries: ``busybox`` (busybox-static), ``gosu`` (Debian's static gosu) and ``su-exec``
(compiled here with ``gcc -static`` from the C source below; Debian bookworm ships no
su-exec package).  A binary may carry file capabilities (``setcap``); the root
filesystem is archived with ``--xattrs`` so ``docker import`` keeps them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field

import images  # tests/e2e/images.py

# Bump when the base layout or the build steps change.
BUILD_VERSION = "1"
HASH_LABEL = "org.harden.zoo.recipe"

# A small su-exec: `su-exec USER[:GROUP] COMMAND [ARGS]`, names or numeric ids, supplementary
# groups from /etc/group, HOME from /etc/passwd.  Parses the files itself (a static glibc
# getpwnam needs NSS modules the image does not have).  Error messages follow su-exec's.
SU_EXEC_C = r"""
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *me;

static void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", me, what, strerror(errno));
    exit(1);
}

/* field 0 = name; returns the fields of the line whose name (or, numeric, id field) matches */
static int find(const char *file, const char *key, int idfield, char f[][256], int nf) {
    FILE *fh = fopen(file, "r");
    char line[1024];
    if (!fh) return 0;
    while (fgets(line, sizeof line, fh)) {
        int i = 0;
        char *p = line, *s;
        line[strcspn(line, "\n")] = 0;
        for (i = 0; i < nf; i++) f[i][0] = 0;
        for (i = 0; i < nf && (s = strsep(&p, ":")); i++) snprintf(f[i], 256, "%s", s);
        if (!strcmp(f[0], key) || !strcmp(f[idfield], key)) { fclose(fh); return 1; }
    }
    fclose(fh);
    return 0;
}

int main(int argc, char **argv) {
    char pw[7][256], gr[4][256], spec[256], *group, *end;
    gid_t groups[64];
    int n = 0;
    long uid, gid;
    FILE *fh;
    me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc < 3) {
        fprintf(stderr, "Usage: %s user-spec command [args]\n", me);
        return 1;
    }
    snprintf(spec, sizeof spec, "%s", argv[1]);
    group = strchr(spec, ':');
    if (group) *group++ = 0;
    if (find("/etc/passwd", spec, 2, pw, 7)) {
        uid = atol(pw[2]);
        gid = atol(pw[3]);
        setenv("HOME", pw[5][0] ? pw[5] : "/", 1);
    } else {
        uid = strtol(spec, &end, 10);
        if (!spec[0] || *end) { fprintf(stderr, "%s: getpwnam(%s) failed\n", me, spec); return 1; }
        gid = uid;
        pw[0][0] = 0;
    }
    if (group && group[0]) {
        if (find("/etc/group", group, 2, gr, 4)) gid = atol(gr[2]);
        else {
            gid = strtol(group, &end, 10);
            if (*end) { fprintf(stderr, "%s: getgrnam(%s) failed\n", me, group); return 1; }
        }
        groups[n++] = gid;
    } else {
        groups[n++] = gid;
        fh = fopen("/etc/group", "r");
        if (fh && pw[0][0]) {
            char line[1024];
            while (n < 64 && fgets(line, sizeof line, fh)) {
                char *p = line, *name = strsep(&p, ":"), *x = strsep(&p, ":"), *id = strsep(&p, ":"), *m;
                (void)name; (void)x;
                if (!id || !p) continue;
                p[strcspn(p, "\n")] = 0;
                while ((m = strsep(&p, ","))) if (!strcmp(m, pw[0])) groups[n++] = atol(id);
            }
        }
        if (fh) fclose(fh);
    }
    if (setgroups(n, groups) < 0) die("setgroups");
    if (setgid(gid) < 0) die("setgid");
    if (setuid(uid) < 0) die("setuid");
    execvp(argv[2], argv + 2);
    fprintf(stderr, "%s: %s: %s\n", me, argv[2], strerror(errno));
    return 1;
}
"""


@dataclass
class Recipe:
    """One zoo image.

    files / dirs: path -> (content, mode, uid, gid) / (mode, uid, gid).
    binaries: path -> (source, mode, file capabilities or ""), source one of
    busybox | gosu | su-exec.  changes: `docker import --change` lines (ENV, USER,
    WORKDIR, VOLUME, EXPOSE, ENTRYPOINT, CMD).
    """

    tag: str
    users: list[tuple[str, int, int, str]] = field(default_factory=list)  # name, uid, gid, home
    groups: list[tuple[str, int, str]] = field(default_factory=list)  # name, gid, members
    files: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)
    dirs: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    binaries: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def digest(self) -> str:
        blob = json.dumps({"recipe": asdict(self), "build": BUILD_VERSION,
                           "su_exec": SU_EXEC_C if self.needs("su-exec") else ""}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def needs(self, source: str) -> bool:
        return any(src == source for src, _mode, _caps in self.binaries.values())


def _label(tag: str) -> str | None:
    p = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return (json.loads(p.stdout or "null") or {}).get(HASH_LABEL, "")


def _image_id(tag: str) -> str | None:
    p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def _binaries(tmp: str, sources: set[str]) -> dict[str, str]:
    """Host paths of the binaries the recipes need."""
    out: dict[str, str] = {}
    for pkg, key, inside in (("busybox-static", "busybox", "bin/busybox"), ("gosu", "gosu", "usr/sbin/gosu")):
        if key not in sources and not (key == "busybox"):
            continue
        deb = images._apt_download(pkg, tmp)
        extract = os.path.join(tmp, "x-" + key)
        subprocess.run(["dpkg", "-x", deb, extract], check=True)
        out[key] = os.path.join(extract, inside)
    if "su-exec" in sources:
        if shutil.which("gcc") is None:
            raise RuntimeError("gcc is needed to build su-exec for the zoo images")
        src = os.path.join(tmp, "su-exec.c")
        with open(src, "w") as fh:
            fh.write(SU_EXEC_C)
        out["su-exec"] = os.path.join(tmp, "su-exec")
        p = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", out["su-exec"], src], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("gcc su-exec failed:\n" + p.stderr[-2000:])
    return out


def _write(path: str, content: str, mode: int, uid: int, gid: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(content)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def _rootfs(recipe: Recipe, root: str, bins: dict[str, str]) -> None:
    for d in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "run", "home", "srv",
              "usr/local/bin", "var/tmp", "var/cache", "var/lib", "opt"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chmod(os.path.join(root, "var/tmp"), 0o1777)
    os.chmod(os.path.join(root, "root"), 0o700)
    shutil.copy2(bins["busybox"], os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([bins["busybox"], "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    os.symlink("../bin", os.path.join(root, "usr", "bin"))
    os.symlink("bin", os.path.join(root, "sbin"))
    os.symlink("../run", os.path.join(root, "var", "run"))
    passwd = ["root:x:0:0:root:/root:/bin/sh"]
    passwd += ["%s:x:%d:%d:%s:%s:/bin/sh" % (n, u, g, n, h) for n, u, g, h in recipe.users]
    passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/bin/false")
    group = ["root:x:0:"] + ["%s:x:%d:%s" % g for g in recipe.groups] + ["nogroup:x:65534:"]
    _write(os.path.join(root, "etc/passwd"), "\n".join(passwd) + "\n", 0o644, 0, 0)
    _write(os.path.join(root, "etc/group"), "\n".join(group) + "\n", 0o644, 0, 0)
    for path, (mode, uid, gid) in sorted(recipe.dirs.items()):
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(full, exist_ok=True)
        os.chmod(full, mode)
        os.chown(full, uid, gid)
    for path, (content, mode, uid, gid) in sorted(recipe.files.items()):
        _write(os.path.join(root, path.lstrip("/")), content, mode, uid, gid)
    for path, (source, mode, caps) in sorted(recipe.binaries.items()):
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        shutil.copy2(bins[source], full)
        os.chmod(full, mode)
        if caps:
            subprocess.run(["setcap", caps, full], check=True)


def _import(root: str, recipe: Recipe, digest: str) -> None:
    cmd = ["docker", "import"]
    for change in recipe.changes + ["LABEL %s=%s" % (HASH_LABEL, digest)]:
        cmd += ["--change", change]
    tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=security.*", "-c", "."],
                           stdout=subprocess.PIPE)
    try:
        subprocess.run(cmd + ["-", recipe.tag], stdin=tar.stdout, stdout=subprocess.DEVNULL, check=True)
    finally:
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of %s failed" % root)


def ensure(recipes: list[Recipe]) -> dict[str, str]:
    """Build the images whose recipe changed or that are missing; return {tag: digest}."""
    ok, reason = images.engine_available()
    if not ok:
        raise RuntimeError("docker engine not available: " + reason)
    want = {r.tag: r.digest() for r in recipes}
    with images._lock():
        todo = [r for r in recipes if _label(r.tag) != want[r.tag]]
        if todo:
            t0 = time.monotonic()
            images._log("building zoo images: " + ", ".join(r.tag for r in todo))
            with tempfile.TemporaryDirectory(prefix="harden-zoo-") as tmp:
                bins = _binaries(tmp, {src for r in todo for src, _m, _c in r.binaries.values()})
                for recipe in todo:
                    root = os.path.join(tmp, "root-" + recipe.tag.replace("/", "_").replace(":", "_"))
                    os.makedirs(root)
                    _rootfs(recipe, root, bins)
                    old = _image_id(recipe.tag)
                    _import(root, recipe, want[recipe.tag])
                    if old and old != _image_id(recipe.tag):  # the outdated build, now untagged
                        subprocess.run(["docker", "rmi", old], capture_output=True)
            images._log("zoo images ready in %.0fs" % (time.monotonic() - t0))
    return want
