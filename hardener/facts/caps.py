"""File capabilities: the `security.capability` extended attribute (`setcap`), as a tar
stream carries it, decoded into capability names.

The attribute is the kernel's `vfs_cap_data`, little-endian: `magic_etc` (u32: the
revision in the high byte, 0x01000000 v1 / 0x02000000 v2 / 0x03000000 v3; bit 0 set when
the capabilities are also effective at exec), then (permitted, inheritable) u32 pairs for
bits 0-31 and, from v2 on, bits 32-63; v3 adds the root uid of the user namespace that
set it. Names are `hardener.values.CAPABILITIES` (kernel bit order, without `CAP_`); a
bit the list does not name yet is its number, as libcap prints it.

Tar streams carry extended attributes as pax records: `SCHILY.xattr.NAME` with the raw
bytes (GNU tar, Docker's archives) or `LIBARCHIVE.xattr.NAME` with base64 (bsdtar).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote

from ..values import CAPABILITIES

XATTR = "security.capability"
_REVISION_MASK = 0xFF000000
_EFFECTIVE = 0x000001
_SIZES = {0x01000000: (1, 12), 0x02000000: (2, 20), 0x03000000: (3, 24)}  # revision -> (version, bytes)


@dataclass(frozen=True)
class FileCaps:
    """One file's capabilities: what exec grants (`permitted`), what it keeps from the
    process's inheritable set (`inheritable`), whether they are `effective` at once,
    the format `version` (1-3) and, for v3, `rootid`."""

    permitted: tuple[str, ...]
    inheritable: tuple[str, ...] = ()
    effective: bool = False
    version: int = 2
    rootid: int | None = None

    def text(self) -> str:
        """As `getcap` writes it: `cap_net_bind_service=ep`."""
        flags = ("e" if self.effective else "") + "p"
        parts = [",".join("cap_" + n.lower() for n in self.permitted) + "=" + flags] if self.permitted else []
        if self.inheritable:
            parts.append(",".join("cap_" + n.lower() for n in self.inheritable) + "+i")
        return " ".join(parts)


def names(mask: int) -> tuple[str, ...]:
    """Capability names of the bits set in `mask`, lowest bit first."""
    return tuple(CAPABILITIES[bit] if bit < len(CAPABILITIES) else str(bit)
                 for bit in range(mask.bit_length()) if mask >> bit & 1)


def decode(blob: bytes | None) -> FileCaps | None:
    """The capabilities a `security.capability` value holds; None when it is not one (an
    unknown revision, or a size that does not match it, as the kernel refuses those)."""
    if not blob or len(blob) < 4:
        return None
    (magic,) = struct.unpack_from("<I", blob)
    known = _SIZES.get(magic & _REVISION_MASK)
    if known is None or len(blob) != known[1]:
        return None
    version, _ = known
    words = struct.unpack_from("<%dI" % (2 if version == 1 else 4), blob, 4)
    permitted, inheritable = words[0], words[1]
    if version > 1:
        permitted |= words[2] << 32
        inheritable |= words[3] << 32
    rootid = struct.unpack_from("<I", blob, 20)[0] if version == 3 else None
    return FileCaps(names(permitted), names(inheritable), bool(magic & _EFFECTIVE), version, rootid)


def xattrs(pax_headers: Mapping[str, str] | None) -> dict[str, bytes]:
    """The extended attributes a tar member's pax records carry, name -> raw bytes. Read
    the tar with `encoding="utf-8"` (and the default `errors="surrogateescape"`) so that
    binary values come back byte for byte."""
    found: dict[str, bytes] = {}
    for key, value in (pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            found[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            try:
                raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            found.setdefault(unquote(key[len("LIBARCHIVE.xattr."):]), raw)
    return found


def capability(pax_headers: Mapping[str, str] | None) -> bytes | None:
    """The raw `security.capability` of a tar member, None when it carries none."""
    if not pax_headers:
        return None
    return xattrs(pax_headers).get(XATTR)
