"""Table tests for hardener.images and the profiles/images.yaml knowledge base."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from hardener.config import ConfigError
from hardener.images import ImageEntry, ImageRef, TmpfsSpec, builtin_entries, load_entries, match_image, parse_image
from hardener.passes import CONTROLS
from hardener.values import CAPABILITIES

IMAGES_YAML = Path(__file__).parents[1] / "profiles" / "images.yaml"
KB = Path("/work/shared/research/image-kb.md")
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return YAML(typ="safe").load(IMAGES_YAML)


@pytest.fixture(scope="module")
def entries(raw: dict[str, Any]) -> tuple[ImageEntry, ...]:
    return load_entries(raw)


# --------------------------------------------------------------------------- parse_image

PARSE_CASES: list[tuple[str, tuple[str | None, str, str | None, str | None]]] = [
    ("postgres", (None, "postgres", None, None)),
    ("postgres:16-alpine", (None, "postgres", "16-alpine", None)),
    ("docker.io/library/postgres:16", (None, "postgres", "16", None)),
    ("index.docker.io/library/postgres", (None, "postgres", None, None)),
    ("registry-1.docker.io/bitnami/postgresql:16", (None, "bitnami/postgresql", "16", None)),
    ("docker.io/grafana/grafana:11.2.0", (None, "grafana/grafana", "11.2.0", None)),
    ("docker.io/postgres", (None, "postgres", None, None)),
    ("library/redis:7", (None, "redis", "7", None)),
    ("grafana/grafana", (None, "grafana/grafana", None, None)),
    ("registry:5000/team/app:1.2", ("registry:5000", "team/app", "1.2", None)),
    ("registry:2", (None, "registry", "2", None)),
    ("localhost/app", ("localhost", "app", None, None)),
    ("localhost:5000/app:dev", ("localhost:5000", "app", "dev", None)),
    ("[::1]:5000/app:1", ("[::1]:5000", "app", "1", None)),
    ("ghcr.io/nginxinc/nginx-unprivileged:1.27", ("ghcr.io", "nginxinc/nginx-unprivileged", "1.27", None)),
    ("quay.io/keycloak/keycloak:26.0", ("quay.io", "keycloak/keycloak", "26.0", None)),
    ("mirror.gcr.io/library/redis:7", ("mirror.gcr.io", "redis", "7", None)),
    ("gcr.io/distroless/static-debian12:nonroot", ("gcr.io", "distroless/static-debian12", "nonroot", None)),
    ("docker.elastic.co/elasticsearch/elasticsearch:9.2.0",
     ("docker.elastic.co", "elasticsearch/elasticsearch", "9.2.0", None)),
    (f"postgres@{SHA_A}", (None, "postgres", None, SHA_A)),
    (f"postgres:16@{SHA_B}", (None, "postgres", "16", SHA_B)),
    (f"ghcr.io/org/app:1@{SHA_A}", ("ghcr.io", "org/app", "1", SHA_A)),
    ("${REGISTRY:-docker.io}/library/redis:${TAG:-7}", ("${REGISTRY:-docker.io}", "redis", "${TAG:-7}", None)),
    ("${REGISTRY}/app", ("${REGISTRY}", "app", None, None)),
    ("$REGISTRY/team/app:1", ("$REGISTRY", "team/app", "1", None)),
    ("redis:${REDIS_TAG}", (None, "redis", "${REDIS_TAG}", None)),
    ("redis:$REDIS_TAG", (None, "redis", "$REDIS_TAG", None)),
    ("postgres:${PG_VERSION:-16}-alpine", (None, "postgres", "${PG_VERSION:-16}-alpine", None)),
    ("redis:${TAG:-${DEFAULT_TAG}}", (None, "redis", "${TAG:-${DEFAULT_TAG}}", None)),
    ("app@${DIGEST}", (None, "app", None, "${DIGEST}")),
    ("  Postgres:16  ", (None, "postgres", "16", None)),
    ("GHCR.IO/Owner/App:V1", ("ghcr.io", "owner/app", "V1", None)),
    ("\tredis:7\n", (None, "redis", "7", None)),
    ("quay.io/minio/minio:RELEASE.2025-01-01T00-00-00Z", ("quay.io", "minio/minio", "RELEASE.2025-01-01T00-00-00Z", None)),
]


@pytest.mark.parametrize(("ref", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_image(ref: str, expected: tuple[str | None, str, str | None, str | None]) -> None:
    assert parse_image(ref) == ImageRef(*expected)


UNPARSEABLE = [
    "",
    "   ",
    "${IMAGE}",
    "${IMAGE}:latest",
    "$IMAGE",
    "ghcr.io/${ORG}/app:1",
    "myorg/${APP}",
    "post gres:16",
    "postgres:",
    "postgres@",
    ":16",
    "/postgres",
    "postgres/",
    "team//app",
    "postgres:16:17",
    "postgres@sha256:not!hex",
    "a@b@c",
    "redis:${TAG",
    "redis:$",
    "-postgres",
    "bad..name/app",
]


@pytest.mark.parametrize("ref", UNPARSEABLE)
def test_parse_image_unparseable(ref: str) -> None:
    assert parse_image(ref) is None


@pytest.mark.parametrize(
    ("ref", "known"),
    [
        ("redis:7", True),
        ("redis", False),
        (f"redis@{SHA_A}", False),
        (f"redis:7-alpine@{SHA_A}", True),
        ("redis:${TAG}", False),
        ("redis:$TAG", False),
        ("redis:${V:-7}-alpine", False),
    ],
)
def test_tag_known(ref: str, known: bool) -> None:
    parsed = parse_image(ref)
    assert parsed is not None
    assert parsed.tag_known is known


def test_registry_known() -> None:
    assert parse_image("ghcr.io/a/b").registry_known  # type: ignore[union-attr]
    assert parse_image("postgres").registry_known  # type: ignore[union-attr]
    assert not parse_image("${R}/a/b").registry_known  # type: ignore[union-attr]


def test_image_ref_is_frozen() -> None:
    ref = parse_image("postgres:16")
    assert ref is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "17"  # type: ignore[misc]


def test_parse_image_non_string() -> None:
    assert parse_image(None) is None  # type: ignore[arg-type]
    assert parse_image(42) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- match_image

MATCH_CASES: list[tuple[str | None, str | None]] = [
    # postgres: Alpine variant first, everything else (incl. unknown tags) -> Debian entry
    ("postgres", "postgres"),
    ("postgres:16", "postgres"),
    ("postgres:latest", "postgres"),
    ("postgres:16-alpine", "postgres-alpine"),
    ("postgres:alpine3.20", "postgres-alpine"),
    ("docker.io/library/postgres:16-alpine", "postgres-alpine"),
    ("registry:5000/library/postgres:16-alpine", "postgres-alpine"),
    ("localhost:5000/postgres:16", "postgres"),
    (f"postgres@{SHA_A}", "postgres"),
    (f"postgres:16-alpine@{SHA_A}", "postgres-alpine"),
    ("postgres:${PG_TAG}", "postgres"),
    ("postgres:${PG_VERSION:-16}-alpine", "postgres"),
    ("POSTGRES:16-ALPINE", "postgres-alpine"),
    # redis 7 vs 8, Debian vs Alpine
    ("redis:7.4-alpine", "redis-7-alpine"),
    ("redis:7-alpine3.20", "redis-7-alpine"),
    ("redis:8-alpine", "redis-alpine"),
    ("redis:alpine", "redis-alpine"),
    ("redis:7.2", "redis-7"),
    ("redis:7.4.2-bookworm", "redis-7"),
    ("redis:8.2", "redis"),
    ("redis", "redis"),
    ("${REGISTRY:-docker.io}/library/redis:${TAG:-7}", "redis"),
    ("mirror.gcr.io/library/redis:7", "redis-7"),
    # nginx
    ("nginx", "nginx"),
    ("nginx:1.27-alpine", "nginx"),
    ("nginxinc/nginx-unprivileged:1.27", "nginx-unprivileged"),
    ("ghcr.io/nginx/nginx-unprivileged:1.27-alpine", "nginx-unprivileged"),
    # databases / brokers
    ("mysql:8.4", "mysql"),
    ("mariadb:11.8", "mariadb"),
    ("mongo:8.0", "mongo"),
    ("rabbitmq:4.1-management-alpine", "rabbitmq-alpine"),
    ("rabbitmq:4.1-management", "rabbitmq"),
    ("memcached:1.6-alpine", "memcached"),
    ("eclipse-mosquitto:2", "mosquitto"),
    ("influxdb:3-core", "influxdb-3-core"),
    ("influxdb:3.3-core", "influxdb-3-core"),
    ("influxdb:2.7-alpine", "influxdb-2"),
    ("influxdb", "influxdb"),
    ("influxdb:1.11", "influxdb"),
    ("influxdb:3-enterprise", "influxdb"),
    # web / proxies
    ("httpd:2.4-alpine", "httpd-alpine"),
    ("httpd:2.4", "httpd"),
    ("traefik:v3.1", "traefik"),
    ("caddy:2-alpine", "caddy"),
    ("haproxy:2.2", "haproxy-legacy"),
    ("haproxy:2.3.10-alpine", "haproxy-legacy"),
    ("haproxy:1.8", "haproxy-legacy"),
    ("haproxy:2.8-alpine", "haproxy"),
    ("haproxy:3.0", "haproxy"),
    ("haproxy", "haproxy"),
    # observability
    ("grafana/grafana:11.2.0", "grafana"),
    ("docker.io/grafana/grafana-oss:11.2.0", "grafana"),  # a variant of the family (-oss, -wolfi, -alpine)
    ("docker.elastic.co/elasticsearch/elasticsearch-wolfi:8.15.0", "elasticsearch"),
    ("example/grafana-oss:1", None),
    ("prom/prometheus:v2.54.1", "prometheus"),
    ("prom/alertmanager", "alertmanager"),
    ("prom/node-exporter:v1.8.2", "node-exporter"),
    ("grafana/loki:3.1", "loki"),
    ("gcr.io/cadvisor/cadvisor:v0.49.1", "cadvisor"),
    ("ghcr.io/google/cadvisor:0.52", "cadvisor"),
    # identity / storage / CI
    ("minio/minio", "minio"),
    ("quay.io/minio/minio:RELEASE.2025-01-01T00-00-00Z", "minio"),
    ("quay.io/keycloak/keycloak:26.0", "keycloak"),
    ("docker.elastic.co/elasticsearch/elasticsearch:9.2.0", "elasticsearch"),
    ("elasticsearch:9.2.0", "elasticsearch"),
    ("hashicorp/vault:1.17", "vault"),
    ("vault:1.13.3", "vault"),
    ("jenkins/jenkins:lts-jdk17", "jenkins"),
    ("registry:2", "registry"),
    ("portainer/portainer-ce:2.21.0", "portainer"),
    ("containrrr/watchtower", "watchtower"),
    # runtimes / bases
    ("node:22-alpine", "node"),
    ("python:3.12-slim", "python"),
    ("gcr.io/distroless/static-debian12:nonroot", "distroless-nonroot"),
    ("gcr.io/distroless/base:debug-nonroot", "distroless-nonroot"),
    ("gcr.io/distroless/base", "distroless"),
    ("gcr.io/distroless/static:${TAG}", "distroless"),
    ("distroless/static:nonroot", None),  # registries: [gcr.io] - not Docker Hub
    ("${REGISTRY}/distroless/static:nonroot", None),  # unknown registry never satisfies `registries`
    ("cgr.dev/chainguard/nginx:latest", "chainguard"),
    ("cgr.dev/chainguard/go", "chainguard-root"),
    ("php:8.3-apache", "php-apache"),
    ("php:8.3-fpm-alpine", "php"),
    ("php:8.3", "php"),
    # PHP apps
    ("nextcloud:31-fpm-alpine", "nextcloud-alpine"),
    ("nextcloud:31-apache", "nextcloud"),
    ("wordpress:cli-2.11", "wordpress-cli"),
    ("wordpress:cli", "wordpress-cli"),
    ("wordpress:6-fpm-alpine", "wordpress-alpine"),
    ("wordpress:6.8-apache", "wordpress"),
    # apps
    ("gitea/gitea:1.22-rootless", "gitea-rootless"),
    ("gitea/gitea:latest-rootless", "gitea-rootless"),
    ("gitea/gitea:rootless", "gitea-rootless"),
    ("gitea/gitea:1.22", "gitea"),
    ("gitea/gitea:${GITEA_TAG}-rootless", "gitea"),
    ("pihole/pihole:latest", "pihole"),
    ("ghcr.io/home-assistant/home-assistant:stable", "home-assistant"),
    ("homeassistant/home-assistant", "home-assistant"),
    # bitnami (never the upstream entry of the same app)
    ("bitnami/postgresql:16", "bitnami"),
    ("docker.io/bitnamilegacy/redis:7.2", "bitnami"),
    ("bitnamisecure/nginx", "bitnami"),
    # unknown / unusable
    ("myorg/myapp:1.0", None),
    ("${REGISTRY}/app", None),
    ("${IMAGE}", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("image", "entry_id"), MATCH_CASES, ids=[str(c[0]) for c in MATCH_CASES])
def test_match_image(entries: tuple[ImageEntry, ...], image: str | None, entry_id: str | None) -> None:
    entry = match_image(image, entries)
    assert (entry.id if entry else None) == entry_id


def test_match_uses_first_entry_in_order() -> None:
    base = {"title": "t", "notes": "", "sources": ["P1"]}
    data = [
        {"id": "a", "repositories": ["x/*"], "tags": ["*"], **base},
        {"id": "b", "repositories": ["x/y"], "tags": ["1*"], **base},
        {"id": "c", "repositories": ["x/y"], **base},
    ]
    es = load_entries(data)
    assert match_image("x/y:1", es).id == "a"  # type: ignore[union-attr]
    assert match_image("x/y", es).id == "c"  # type: ignore[union-attr]  # no tag: tag entries skipped


def test_match_registry_constraint() -> None:
    base = {"title": "t", "notes": "", "sources": ["P1"]}
    data = [
        {"id": "hub-only", "repositories": ["app"], "registries": ["docker.io"], **base},
        {"id": "ghcr", "repositories": ["org/app"], "registries": ["ghcr.io"], **base},
    ]
    es = load_entries(data)
    assert match_image("app:1", es).id == "hub-only"  # type: ignore[union-attr]
    assert match_image("docker.io/library/app", es).id == "hub-only"  # type: ignore[union-attr]
    assert match_image("quay.io/app", es) is None
    assert match_image("ghcr.io/org/app", es).id == "ghcr"  # type: ignore[union-attr]
    assert match_image("org/app", es) is None


# --------------------------------------------------------------------------- the real images.yaml


def test_images_yaml_loads(raw: dict[str, Any], entries: tuple[ImageEntry, ...]) -> None:
    assert raw["version"] == 1
    assert len(entries) == len(raw["images"]) >= 35
    assert builtin_entries() == entries  # what the core matches against


def test_every_entry_has_sources_and_notes(entries: tuple[ImageEntry, ...]) -> None:
    for e in entries:
        assert e.sources, e.id
        assert e.title, e.id
        assert isinstance(e.notes, str), e.id


def test_sources_exist_in_knowledge_base(entries: tuple[ImageEntry, ...]) -> None:
    if not KB.exists():
        pytest.skip("knowledge base not available")
    defined = set(re.findall(r"^\* ([PG][0-9]+[a-z]?) ", KB.read_text(encoding="utf-8"), re.M))
    assert len(defined) > 100
    for e in entries:
        missing = set(e.sources) - defined
        assert not missing, (e.id, missing)


def test_users_are_uid_gid_strings(raw: dict[str, Any], entries: tuple[ImageEntry, ...]) -> None:
    for item in raw["images"]:
        if "user" in item:
            assert isinstance(item["user"], str), item["id"]
            assert re.fullmatch(r"[0-9]+:[0-9]+", item["user"]), item["id"]
    assert all(e.user is None or re.fullmatch(r"[0-9]+:[0-9]+", e.user) for e in entries)


def test_users_survive_yaml11_loaders() -> None:
    """PyYAML (YAML 1.1) must also read every user as a string: 472:0 unquoted would be 28320."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(IMAGES_YAML.read_text(encoding="utf-8"))
    load_entries(data)
    for item in data["images"]:
        if "user" in item:
            assert isinstance(item["user"], str), item["id"]


def test_caps_are_known(entries: tuple[ImageEntry, ...]) -> None:
    for e in entries:
        for cap in e.cap_add:
            assert cap in CAPABILITIES, (e.id, cap)
            assert cap == cap.upper() and not cap.startswith("CAP_")


def test_skip_keys_are_controls(raw: dict[str, Any], entries: tuple[ImageEntry, ...]) -> None:
    for item in raw["images"]:
        for control in item.get("skip") or {}:
            assert control in CONTROLS, (item["id"], control)
    for e in entries:
        assert set(e.skip) <= set(CONTROLS)
        assert all(reason.strip() for reason in e.skip.values())


def test_ids_unique(raw: dict[str, Any]) -> None:
    ids = [item["id"] for item in raw["images"]]
    assert len(ids) == len(set(ids))


def test_non_root_entries_keep_no_caps(entries: tuple[ImageEntry, ...]) -> None:
    """A non-root `user` holds no capabilities after execve (G8): cap_add only for root entries."""
    for e in entries:
        if e.user is not None:
            assert e.cap_add == (), e.id


def test_tmpfs_rules(entries: tuple[ImageEntry, ...]) -> None:
    forbidden = {"/etc/nginx", "/usr/share/elasticsearch/config", "/etc/rabbitmq"}
    for e in entries:
        for t in e.tmpfs:
            assert t.path.startswith("/") and t.path not in forbidden, (e.id, t.path)
            assert not t.path.startswith("/var/run"), (e.id, t.path)  # G13: mount real paths
            assert t.mode is not None, (e.id, t.path)  # explicit mode everywhere
            if "user" in e.skip:
                assert t.owner == "root", (e.id, t.path)
        assert not set(e.requires_mounts) & {t.path for t in e.tmpfs}


def test_only_s6_run_is_exec(entries: tuple[ImageEntry, ...]) -> None:
    execs = {(e.id, t.path) for e in entries for t in e.tmpfs if t.exec}
    assert execs == {("home-assistant", "/run")}


def test_doc_table_is_covered(entries: tuple[ImageEntry, ...]) -> None:
    ids = {e.id for e in entries}
    expected = {
        "postgres", "postgres-alpine", "redis", "redis-alpine", "redis-7", "redis-7-alpine", "nginx",
        "nginx-unprivileged", "mysql", "mariadb", "mongo", "rabbitmq", "rabbitmq-alpine", "memcached",
        "httpd", "httpd-alpine", "traefik", "caddy", "grafana", "prometheus", "alertmanager",
        "node-exporter", "loki", "minio", "keycloak", "node", "python", "distroless", "distroless-nonroot",
        "chainguard", "elasticsearch", "vault", "jenkins", "nextcloud", "wordpress", "php", "php-apache",
        "haproxy", "registry", "portainer", "gitea", "gitea-rootless", "pihole", "home-assistant",
        "mosquitto", "influxdb-2", "influxdb-3-core", "cadvisor", "watchtower", "bitnami",
    }
    assert expected <= ids, expected - ids


@pytest.mark.parametrize(
    ("entry_id", "user", "cap_add", "skipped"),
    [
        ("postgres", "999:999", (), set()),
        ("postgres-alpine", "70:70", (), set()),
        ("redis-alpine", "999:1000", (), set()),
        ("grafana", "472:0", (), set()),
        ("nginx", None, ("CHOWN", "SETUID", "SETGID"), {"user"}),
        ("httpd", None, ("SETUID", "SETGID"), {"user"}),
        ("php-apache", None, ("SETUID", "SETGID"), {"user"}),
        ("caddy", None, ("NET_BIND_SERVICE",), {"user"}),
        ("elasticsearch", "1000:0", (), {"read_only"}),
        ("keycloak", "1000:0", (), {"read_only"}),
        ("minio", None, (), {"user", "read_only"}),
        ("gitea", None, (), {"user", "read_only", "capabilities"}),
        ("pihole", None, (), {"user", "read_only", "capabilities", "no_new_privileges"}),
        ("cadvisor", None, (), {"user", "read_only", "capabilities"}),
        ("home-assistant", None, (), {"user", "read_only", "capabilities"}),
        ("vault", None, ("CHOWN", "SETUID", "SETGID", "SETFCAP", "IPC_LOCK"),
         {"user", "read_only", "no_new_privileges"}),
    ],
)
def test_policy_examples(entries: tuple[ImageEntry, ...], entry_id: str, user: str | None,
                         cap_add: tuple[str, ...], skipped: set[str]) -> None:
    e = {x.id: x for x in entries}[entry_id]
    assert e.user == user
    assert e.cap_add == cap_add
    assert set(e.skip) == skipped
    assert "resources" not in e.skip


def test_jvm_images_get_more_memory(entries: tuple[ImageEntry, ...]) -> None:
    by_id = {e.id: e for e in entries}
    assert by_id["elasticsearch"].memory == "2g"
    assert by_id["keycloak"].memory == "1g"
    assert by_id["jenkins"].memory == "1g"


def test_entry_is_frozen_and_hashable(entries: tuple[ImageEntry, ...]) -> None:
    e = entries[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.user = "0:0"  # type: ignore[misc]
    with pytest.raises(TypeError):
        e.skip["user"] = "x"  # type: ignore[index]
    assert hash(e) == hash(dataclasses.replace(e))
    assert len(set(entries)) == len(entries)


# --------------------------------------------------------------------------- load_entries errors


def _good() -> dict[str, Any]:
    return {
        "version": 1,
        "images": [
            {
                "id": "bad-entry",
                "title": "Example",
                "repositories": ["example"],
                "user": "1000:1000",
                "tmpfs": ["/tmp"],
                "notes": "",
                "sources": ["P1"],
            }
        ],
    }


def test_good_minimal_data_loads() -> None:
    (entry,) = load_entries(_good())
    assert entry.tmpfs == (TmpfsSpec("/tmp"),)
    assert entry.skip == {}
    assert load_entries(_good()["images"]) == (entry,)  # bare list accepted too


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_good())
    item = data["images"][0]
    if value is _DELETE:
        del item[path]
    else:
        item[path] = value
    return data


_DELETE = object()

BAD_ENTRY_CASES: list[tuple[str, Any, str]] = [
    ("colour", "blue", "unknown key"),
    ("skip", {"root": "because"}, "unknown control 'root'"),
    ("skip", {"usr": "because"}, "(did you mean 'user'?)"),
    ("skip", {"read_only": ""}, "non-empty reason"),
    ("skip", ["user"], "mapping"),
    ("user", 28320, "quoted"),
    ("user", 1000, "quoted"),
    ("user", "node", "numeric"),
    ("user", "1000", "numeric"),
    ("user", "0:0", "root"),
    ("cap_add", ["CAP_CHOWN"], "unknown capability 'CAP_CHOWN' (upper case, no CAP_ prefix) (did you mean 'CHOWN'?)"),
    ("cap_add", ["chown"], "unknown capability"),
    ("cap_add", ["FLY"], "unknown capability"),
    ("cap_add", "CHOWN", "list"),
    ("sources", [], "must not be empty"),
    ("sources", ["see docs"], "malformed"),
    ("sources", _DELETE, "missing required key 'sources'"),
    ("notes", _DELETE, "missing required key 'notes'"),
    ("repositories", [], "must not be empty"),
    ("repositories", "example", "list"),
    ("tags", [], "must not be empty"),
    ("tmpfs", [{"path": "/tmp", "owner": "nobody"}], "owner"),
    ("tmpfs", [{"path": "/tmp", "mode": 1777}], "quoted octal"),
    ("tmpfs", [{"path": "/tmp", "size": "64 MB"}], "size"),
    ("tmpfs", [{"path": "/tmp", "exec": "yes"}], "exec"),
    ("tmpfs", [{"path": "/tmp", "uid": 1}], "unknown key"),
    ("tmpfs", ["tmp"], "absolute"),
    ("tmpfs", ["/tmp:size=1m"], "absolute"),
    ("tmpfs", ["/tmp", "/tmp"], "duplicated"),
    ("tmpfs", ["/tmp", {"path": "/tmp", "mode": "1777"}], "listed twice"),
    ("memory", "1 GB", "memory"),
    ("memory", 1024, "memory"),
    ("pids", True, "pids"),
    ("pids", -1, "pids"),
    ("id", "Bad_Id", "id: must be lower-case words"),
    ("requires_mounts", ["/tmp"], "both a tmpfs"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_ENTRY_CASES,
                         ids=[f"{c[0]}={c[1]!r}" for c in BAD_ENTRY_CASES])
def test_load_entries_rejects_bad_entry(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_entries(_with(key, value))
    if key != "id":
        assert str(info.value).startswith("images.yaml: images[0] ('bad-entry')") and key in str(info.value)


def test_load_entries_rejects_user_owned_tmpfs_when_user_skipped() -> None:
    data = _with("skip", {"user": "root master"})
    del data["images"][0]["user"]
    with pytest.raises(ConfigError, match="owner: root"):
        load_entries(data)


def test_load_entries_rejects_user_with_user_skipped() -> None:
    with pytest.raises(ConfigError, match="also skips"):
        load_entries(_with("skip", {"user": "x"}))


def test_load_entries_rejects_caps_with_capabilities_skipped() -> None:
    data = _with("skip", {"capabilities": "privileged"})
    data["images"][0]["cap_add"] = ["CHOWN"]
    with pytest.raises(ConfigError, match="skips the 'capabilities'"):
        load_entries(data)


def test_load_entries_rejects_duplicate_id() -> None:
    data = _good()
    twin = dict(data["images"][0], repositories=["other"])
    data["images"].append(twin)
    with pytest.raises(ConfigError, match="duplicate id"):
        load_entries(data)


def test_load_entries_rejects_unreachable_variant() -> None:
    data = _good()
    variant = dict(data["images"][0], id="example-alpine", tags=["*alpine*"])
    data["images"].append(variant)
    with pytest.raises(ConfigError, match="unreachable"):
        load_entries(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2, "images": []}, "version"),
        ({"images": []}, "version"),
        ({"version": 1, "images": {}}, "list"),
        ({"version": 1, "images": [], "extra": 1}, "unknown key 'extra'"),
        ({"version": 1, "images": ["postgres"]}, "must be a mapping"),
        ("images", "must be a mapping"),
        (None, "must be a mapping"),
    ],
)
def test_load_entries_rejects_bad_document(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_entries(data)


def test_a_service_image_is_matched_once_per_set_of_entries(entries: tuple[ImageEntry, ...]) -> None:
    from hardener.images.knowledge import match_service_image

    first = match_service_image("postgres:16", entries)
    assert first.entry is not None and match_service_image("postgres:16", entries) is first
    others = tuple(e for e in entries if e.id != first.entry.id)
    assert match_service_image("postgres:16", others).entry != first.entry
    assert match_service_image("postgres:16", list(entries)).entry == first.entry
