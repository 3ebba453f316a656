"""Broken variants: zoo stacks hardened wrongly on purpose, one per kind of breakage.

Each is a hardened Compose file as a careless hand (or an older harden) might write it:
read_only without the tmpfs a written path needs, a user that cannot write its volume, a
memory limit below the heap, `cap_drop: [ALL]` on a program that needs its file
capability, a PID limit below what the entrypoint forks. `harden verify --as-is` must
fail on each, naming `service` and `control`; where a fix is known (`fix`), verify must
print it as verified (a rerun with it applied no longer shows the signature).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import recipes

_LOCKED = """    cap_drop:
      - ALL
    security_opt:
      - no-new-privileges:true
"""


@dataclass(frozen=True)
class Broken:
    name: str
    stack: str  # the zoo stack it breaks
    service: str
    control: str  # the control verify must name
    breakage: str  # what is wrong, for reports
    compose: str
    fix: str = ""  # a fragment of the verified fix verify must print ("" where none is expected)


BROKEN: list[Broken] = [
    Broken(
        "ro-no-tmpfs", "app-home", "app", "read_only", "read_only, no tmpfs for the ~/.cache the start script creates",
        f"""\
services:
  app:
    image: {recipes.APP_HOME.tag}
    ports:
      - "127.0.0.1::8080"
    user: "10001:10001"
    read_only: true
    tmpfs:
      - /tmp:size=64m,uid=10001,gid=10001,mode=1777,noexec,nosuid,nodev
{_LOCKED}""",
        fix='tmpfs: ["/home/app/.cache:',
    ),
    Broken(
        "ro-template", "tmpl-web", "web", "read_only", "read_only, no tmpfs for conf.d: the template is not rendered (still running)",
        f"""\
services:
  web:
    image: {recipes.TMPL_WEB.tag}
    environment:
      SITE_NAME: zoo
    ports:
      - "127.0.0.1::8080"
    read_only: true
    tmpfs:
      - /tmp:size=64m,mode=1777,noexec,nosuid,nodev
{_LOCKED}""",
        fix='tmpfs: ["/etc/app/conf.d:',
    ),
    Broken(
        "user-volume", "gosu-db", "db", "user", "user 1000 on a data volume the image gives to 999 (the server refuses it)",
        f"""\
services:
  db:
    image: {recipes.GOSU_DB.tag}
    ports:
      - "127.0.0.1::5440"
    volumes:
      - dbdata:/var/lib/db/data
    user: "1000:1000"
    read_only: true
    tmpfs:
      - /tmp:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev
{_LOCKED}
volumes:
  dbdata:
""",
        fix='user: "999:999"',
    ),
    Broken(
        "user-cannot-write", "suexec-kv", "kv", "user", "user 1000 cannot write /data (999:1000, 0755); the probe writes a row",
        f"""\
services:
  kv:
    image: {recipes.SUEXEC_KV.tag}
    command: ["kv-server", "--appendonly", "yes"]
    ports:
      - "127.0.0.1::6390"
    volumes:
      - kvdata:/data
    x-harden:
      probe: "sh -c 'echo SET probe 1 | nc 127.0.0.1 6390 | grep -qx OK'"
    user: "1000:1000"
{_LOCKED}
volumes:
  kvdata:
""",
        fix='user: "999:1000"',
    ),
    Broken(
        "mem-below-heap", "jvm-heap", "api", "resources", "mem_limit 256m under -Xmx512m (the VM refuses to start)",
        f"""\
services:
  api:
    image: {recipes.JVM_HEAP.tag}
    environment:
      JAVA_OPTS: "-Xmx512m"
    ports:
      - "127.0.0.1::8080"
    read_only: true
    tmpfs:
      - /tmp:size=64m,mode=1777,noexec,nosuid,nodev
{_LOCKED}    mem_limit: 256m
""",
        fix='memory: "768m"',
    ),
    Broken(
        "cache-below-m", "kvcache", "cache", "resources", "mem_limit 256m under memcached-like -m 512 (runs, evicts)",
        f"""\
services:
  cache:
    image: {recipes.KVCACHE_IMAGE.tag}
    command: ["kvcache", "-m", "512"]
    ports:
      - "127.0.0.1::11211"
    user: "11211:11211"
{_LOCKED}    mem_limit: 256m
""",
        fix='memory: "640m"',
    ),
    Broken(
        "filecap-dropped", "port80-filecap", "web", "capabilities", "cap_drop ALL, no cap_add for the binary's cap_net_bind_service",
        f"""\
services:
  web:
    image: {recipes.CAPWEB.tag}
    ports:
      - "127.0.0.1::80"
    user: "101:101"
{_LOCKED}""",
        fix="cap_add: [NET_BIND_SERVICE]",
    ),
    Broken(
        "pids-too-low", "tmpl-web", "web", "resources", "pids_limit 2: the entrypoint cannot fork its scripts",
        f"""\
services:
  web:
    image: {recipes.TMPL_WEB.tag}
    environment:
      SITE_NAME: zoo
    ports:
      - "127.0.0.1::8080"
    pids_limit: 2
""",
        fix="pids: 64",
    ),
]

BY_NAME = {b.name: b for b in BROKEN}
