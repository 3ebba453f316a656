"""Facts from an image registry (OCI distribution API v2), with the standard library only.

The registry is named as Docker names it (`endpoint`). A 401 is answered once: with an
anonymous bearer token (`WWW-Authenticate: Bearer realm=...,service=...,scope=...`), or
with the user's credentials from the Docker client config when there are some; secrets
travel only over https or to this machine, never along a redirect (blob downloads are
redirected to other hosts). A manifest list / OCI index gives the image of this machine's
platform, else linux/amd64. The config blob gives the facts; when the compressed layers
together stay under `layer_cap`, they are streamed (each checked against its size and
digest, within the look-up's deadline) to read passwd, group, the entrypoint script,
owners and file capabilities (`layers.LayerTree`); the scripts the entrypoint runs from a
directory are known only once the tree is, so they are read afterwards from just the
layers that hold them. Documents and blobs are checked against their digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform as host_platform
import socket
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import replace
from typing import IO, Any, Callable
from urllib.parse import urlencode, urlsplit

from .auth import Credentials, load_credentials, may_send_secret, parse_challenge
from .deadline import Deadline
from .endpoint import Endpoint, endpoint
from .gather import PASSWD_LIMIT, SCRIPT_LIMIT, candidates, from_config, with_files
from .entrypoint import script_target
from .layers import LayerTree, member_path
from .lookup import DEFAULT_LAYER_CAP
from .model import ImageFacts

_CONFIG_LIMIT = 8 << 20
_MANIFEST_LIMIT = 4 << 20
_INDEX = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
_IMAGE = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json")
_ACCEPT = ", ".join(_IMAGE + _INDEX)
_ARCH = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
         "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


class RegistryError(Exception):
    """The registry could not be asked or did not answer usefully; the message is safe to show."""


def machine_platform() -> tuple[str, str]:
    return _ARCH.get(host_platform.machine().lower(), ("amd64", ""))


def choose(manifests: list[dict[str, Any]], arch: str, variant: str = "") -> dict[str, Any] | None:
    """The entry of an index for linux/`arch` (its variant preferred), else linux/amd64."""
    def score(entry: dict[str, Any]) -> int:
        p = entry.get("platform") or {}
        if p.get("os") != "linux":
            return 0
        if p.get("architecture") == arch:
            return 3 if not variant or p.get("variant", variant) == variant else 2
        return 1 if p.get("architecture") == "amd64" else 0

    ranked = sorted(((score(m), i) for i, m in enumerate(manifests) if isinstance(m, dict)), key=lambda s: (-s[0], s[1]))
    return manifests[ranked[0][1]] if ranked and ranked[0][0] > 0 else None


class _Verified(io.RawIOBase):
    """A blob stream that hashes what is read, seekable forward only (what a tar reader
    going through members needs); `check()` reads the rest and compares with the digest."""

    def __init__(self, stream: IO[bytes], digest: str, size: int, deadline: Deadline) -> None:
        self.stream, self.digest, self.hash, self.offset = stream, digest, hashlib.sha256(), 0
        self.size, self.deadline = size, deadline

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.deadline.left()  # raises TimeoutError once the look-up's time is spent
        data = self.stream.read(len(buffer))
        if self.offset + len(data) > self.size:
            raise RegistryError(f"blob {self.digest[:19]} is larger than its manifest says")
        buffer[: len(data)] = data
        self.hash.update(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.offset + offset if whence == io.SEEK_CUR else -1
        if target < self.offset:
            raise OSError("this stream only seeks forward")
        while self.offset < target and self.read(min(target - self.offset, 1 << 16)):
            pass
        return self.offset

    def check(self) -> None:
        while self.read(1 << 16):
            pass
        if self.digest.startswith("sha256:") and "sha256:" + self.hash.hexdigest() != self.digest:
            raise RegistryError(f"blob {self.digest[:19]} does not match its digest")


class Client:
    def __init__(self, where: Endpoint, credentials: Credentials | None, deadline: Deadline,
                 opener: urllib.request.OpenerDirector | None = None) -> None:
        self.where, self.deadline = where, deadline
        self._credentials = credentials
        self._authorization: str | None = None
        self._opener = opener or urllib.request.build_opener()

    def __repr__(self) -> str:
        return f"Client({self.where.host}/{self.where.repository})"

    def _open(self, url: str, accept: str | None = None, *, retried: bool = False) -> Any:
        request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
        if self._authorization and may_send_secret(url):
            request.add_unredirected_header("Authorization", self._authorization)
        try:
            return self._opener.open(request, timeout=self.deadline.left())
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate") if exc.headers else None
            exc.close()
            if exc.code == 401 and not retried:
                self._authenticate(challenge)
                return self._open(url, accept, retried=True)
            what = urlsplit(url).path.rsplit("/", 2)[-2:]
            raise RegistryError(f"{self.where.host} answered {exc.code} for {'/'.join(what)}") from None
        except (urllib.error.URLError, OSError, TimeoutError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{self.where.host} unreachable: {reason}") from None

    def _authenticate(self, header: str | None) -> None:
        challenge = parse_challenge(header)
        if challenge is None:
            raise RegistryError(f"{self.where.host} answered 401 without a challenge")
        scheme, params = challenge
        if scheme == "basic":
            if self._credentials is None or not may_send_secret(self.where.base):
                raise RegistryError(f"{self.where.host} needs credentials (none usable in the Docker config)")
            self._authorization = self._credentials.authorization()
            return
        realm = params.get("realm", "")
        if scheme != "bearer" or urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.where.host} asks for an unsupported authentication ({scheme})")
        query = {"service": params.get("service", ""), "scope": params.get("scope") or f"repository:{self.where.repository}:pull"}
        request = urllib.request.Request(realm + ("&" if "?" in realm else "?") + urlencode({k: v for k, v in query.items() if v}))
        if self._credentials is not None and may_send_secret(realm):
            request.add_unredirected_header("Authorization", self._credentials.authorization())
        try:
            with self._opener.open(request, timeout=self.deadline.left()) as answer:
                body = json.loads(answer.read(1 << 20))
        except urllib.error.HTTPError as exc:
            exc.close()
            raise RegistryError(f"token service {urlsplit(realm).netloc} answered {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError, TimeoutError) as exc:
            raise RegistryError(f"token service {urlsplit(realm).netloc} failed: {type(exc).__name__}") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {urlsplit(realm).netloc} gave no token")
        self._authorization = "Bearer " + token

    def _json(self, url: str, accept: str | None, limit: int, digest: str | None = None) -> tuple[str, dict[str, Any]]:
        with self._open(url, accept) as answer:
            raw = answer.read(limit + 1)
            media = (answer.headers.get("Content-Type") or "").split(";")[0].strip()
        if len(raw) > limit:
            raise RegistryError(f"{self.where.host}: document over {limit >> 20} MB")
        if digest and digest.startswith("sha256:") and "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            raise RegistryError(f"{self.where.host}: {digest[:19]} does not match its digest")
        try:
            return media, json.loads(raw)
        except ValueError:
            raise RegistryError(f"{self.where.host}: not JSON") from None

    def image_manifest(self) -> dict[str, Any]:
        """The image manifest of the reference, through an index when there is one."""
        ref = self.where.reference
        media, doc = self._json(f"{self.where.base}/manifests/{ref}", _ACCEPT, _MANIFEST_LIMIT, ref if ":" in ref else None)
        media = doc.get("mediaType") or media
        if media in _INDEX or "manifests" in doc:
            arch, variant = machine_platform()
            chosen = choose(doc.get("manifests") or [], arch, variant)
            if chosen is None or not isinstance(chosen.get("digest"), str):
                raise RegistryError(f"no linux/{arch} or linux/amd64 image in the index of {self.where.repository}")
            _, doc = self._json(f"{self.where.base}/manifests/{chosen['digest']}", _ACCEPT, _MANIFEST_LIMIT, chosen["digest"])
        if not isinstance(doc.get("config"), dict) or not isinstance(doc["config"].get("digest"), str):
            raise RegistryError(f"{self.where.repository}: unsupported manifest (schema {doc.get('schemaVersion')})")
        return doc

    def blob(self, digest: str, limit: int) -> bytes:
        with self._open(f"{self.where.base}/blobs/{digest}") as answer:
            raw = answer.read(limit + 1)
        if len(raw) > limit or "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            raise RegistryError(f"blob {digest[:19]} is too large or does not match its digest")
        return raw

    def layer(self, digest: str, media: str, size: int, tree: LayerTree | Callable[[tarfile.TarFile], None]) -> None:
        """Stream one layer into `tree` (or to a function reading its members), checked
        against its digest."""
        if "gzip" not in media and not media.endswith("tar"):
            raise RegistryError(f"layer type {media} not readable here")
        with self._open(f"{self.where.base}/blobs/{digest}") as answer:
            raw = _Verified(answer, digest, size, self.deadline)
            data: Any = gzip.GzipFile(fileobj=raw, mode="rb") if "gzip" in media else io.BufferedReader(raw, 1 << 16)
            try:
                with tarfile.open(fileobj=data, mode="r:", encoding="utf-8") as tar:
                    if isinstance(tree, LayerTree):
                        tree.add_layer(tar)
                    else:
                        tree(tar)
            except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
                raise RegistryError(f"layer {digest[:19]} unreadable: {exc or type(exc).__name__}") from None
            raw.check()


def _keep(facts: ImageFacts) -> Callable[[str, int], bool]:
    wanted, base = {"/etc/passwd", "/etc/group"}, None
    target = script_target(facts.entrypoint, facts.cmd)
    if target and target[0] == "path":
        wanted.update(candidates(target[1], facts.env, facts.workdir))
        base = target[1].rsplit("/", 1)[-1]
    return lambda path, size: size <= max(PASSWD_LIMIT, SCRIPT_LIMIT) and (
        path in wanted or (base is not None and path.rsplit("/", 1)[-1] == base))


def read_registry(image: str, written: str, deadline: Deadline, *, layer_cap: int = DEFAULT_LAYER_CAP,
                  docker_config: Any = None, known: Callable[[str], ImageFacts | None] = lambda d: None,
                  opener: urllib.request.OpenerDirector | None = None) -> ImageFacts:
    """Facts of `image` from its registry (`written` is the reference as the user wrote
    it). Raises RegistryError with a reason safe to show."""
    where = endpoint(image)
    if where is None:
        raise RegistryError(f"no registry can be named for {image!r}")
    client = Client(where, load_credentials(where.host, docker_config), deadline, opener)
    manifest = client.image_manifest()
    digest = manifest["config"]["digest"]
    cached = known(digest)
    if cached is not None:
        return cached
    try:
        blob = json.loads(client.blob(digest, _CONFIG_LIMIT))
    except ValueError:
        raise RegistryError(f"config {digest[:19]} is not JSON") from None
    plat = "/".join(str(blob.get(k)) for k in ("os", "architecture", "variant") if blob.get(k))
    facts = from_config(written, digest, "registry", blob.get("config"), plat)
    layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
    if not all(isinstance(layer.get("size"), int) and isinstance(layer.get("digest"), str) for layer in layers):
        return replace(facts, notes=("files not read: the manifest lists layers without size or digest",))
    total = sum(layer["size"] for layer in layers)
    if total > layer_cap:
        return replace(facts, notes=(f"files not read: layers {total / 2**20:.0f} MB over the {layer_cap / 2**20:.0f} MB cap",))
    failures: list[str] = []

    def reread(index: int, paths: set[str]) -> dict[str, bytes]:
        """The bytes of `paths` (regular files) in layer `index`, read again."""
        found: dict[str, bytes] = {}

        def collect(tar: tarfile.TarFile) -> None:
            for member in tar:
                path = member_path(member.name)
                if path in paths and member.isreg():
                    stream = tar.extractfile(member)
                    if stream is not None:
                        found[path] = stream.read()

        layer = layers[index]
        try:
            client.layer(layer["digest"], str(layer.get("mediaType") or ""), layer["size"], collect)
        except (RegistryError, TimeoutError) as exc:
            failures.append(f"layer {layer['digest'][:19]} not read again: {exc}")
            return {}
        return found

    tree = LayerTree(_keep(facts), reread)
    try:
        for layer in layers:
            client.layer(layer["digest"], str(layer.get("mediaType") or ""), layer["size"], tree)
    except (RegistryError, TimeoutError) as exc:
        return replace(facts, notes=(f"files not read: {exc}",))
    done = with_files(facts, tree)
    return replace(done, notes=(*done.notes, *failures)) if failures else done
