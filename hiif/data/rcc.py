"""Reader for Qt binary resource files (``*.rcc``, magic ``qres``).

Layout (all integers big-endian)::

    header   "qres", u32 version (1..3), u32 tree offset, u32 data offset,
             u32 names offset, [version >= 3: u32 overall flags]
    tree     array of nodes, 14 bytes (version 1) or 22 bytes (version >= 2);
             node 0 is the root directory.
               u32 name offset, u16 flags,
               directory (flags & 2): u32 child count, u32 index of first child
               file:                  u16 country, u16 language, u32 data offset
               version >= 2:          u64 last-modified (ms since epoch)
    names    u16 length, u32 hash, then `length` UTF-16BE code units
    data     u32 length, then `length` bytes;
               flags & 1: zlib (qCompress: u32 uncompressed size + zlib stream)
               flags & 4: zstd frame (needs the optional ``zstandard`` module)

Only the standard library is required.  Example::

    >>> entries = list_rcc("clickgame.rcc")            # {inner path: (offset, flags)}
    >>> data = read_rcc_file("clickgame.rcc", "gcompris/src/.../sea1.webp")
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import NamedTuple, Union

__all__ = [
    "FLAG_COMPRESSED",
    "FLAG_DIRECTORY",
    "FLAG_COMPRESSED_ZSTD",
    "RccEntry",
    "RccFile",
    "list_rcc",
    "read_rcc_file",
]

PathLike = Union[str, "os.PathLike[str]"]

MAGIC = b"qres"
FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04

_MAX_DEPTH = 256


class RccEntry(NamedTuple):
    """A file inside an rcc: offset of its data entry (relative to the data section) and flags."""

    offset: int
    flags: int


class RccFile:
    """An rcc file parsed from bytes (or loaded from a path with :meth:`open`)."""

    def __init__(self, blob: bytes, name: str = "<rcc>") -> None:
        self.blob = memoryview(blob).toreadonly()
        self.name = name
        if len(blob) < 20 or bytes(self.blob[:4]) != MAGIC:
            raise ValueError(f"{name}: not a Qt binary resource file (magic {bytes(self.blob[:4])!r}, expected {MAGIC!r})")
        self.version, self.tree_offset, self.data_offset, self.names_offset = struct.unpack_from(">4I", blob, 4)
        if not 1 <= self.version <= 3:
            raise ValueError(f"{name}: unsupported rcc format version {self.version} (supported: 1-3)")
        self.overall_flags = 0
        if self.version >= 3:
            (self.overall_flags,) = self._unpack(">I", 20, "header")
        self.node_size = 14 if self.version == 1 else 22
        for label, off in (("tree", self.tree_offset), ("data", self.data_offset), ("names", self.names_offset)):
            if off >= len(blob):
                raise ValueError(f"{name}: {label} section offset {off} beyond end of file ({len(blob)} bytes)")
        self._entries: dict[str, RccEntry] | None = None

    @classmethod
    def open(cls, path: PathLike) -> "RccFile":
        with open(path, "rb") as f:
            return cls(f.read(), name=os.fspath(path))

    # -- low level ---------------------------------------------------------------
    def _unpack(self, fmt: str, pos: int, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.blob):
            raise ValueError(f"{self.name}: truncated {what} at byte {pos}")
        return struct.unpack_from(fmt, self.blob, pos)

    def _node(self, index: int) -> tuple[int, int, int, int]:
        """Return (name offset, flags, a, b): a, b = (child count, first child) or (country|lang, data offset)."""
        pos = self.tree_offset + index * self.node_size
        name_off, flags = self._unpack(">IH", pos, f"tree node {index}")
        if flags & FLAG_DIRECTORY:
            count, first = self._unpack(">II", pos + 6, f"tree node {index}")
            return name_off, flags, count, first
        _country, _lang, data_off = self._unpack(">HHI", pos + 6, f"tree node {index}")
        return name_off, flags, 0, data_off

    def _name(self, name_off: int) -> str:
        pos = self.names_offset + name_off
        (length,) = self._unpack(">H", pos, "name")
        start = pos + 6
        end = start + 2 * length
        if end > len(self.blob):
            raise ValueError(f"{self.name}: truncated name at byte {pos}")
        return bytes(self.blob[start:end]).decode("utf-16-be")

    # -- public API ---------------------------------------------------------------
    def entries(self) -> dict[str, RccEntry]:
        """All files (not directories) as ``{"dir/sub/file.ext": RccEntry(offset, flags)}``."""
        if self._entries is not None:
            return self._entries
        out: dict[str, RccEntry] = {}
        n_nodes_max = max(0, (len(self.blob) - self.tree_offset) // self.node_size)
        _, root_flags, count, first = self._node(0)
        if not root_flags & FLAG_DIRECTORY:
            raise ValueError(f"{self.name}: root tree node is not a directory")
        visited = {0}
        stack: list[tuple[str, int, int, int]] = [("", count, first, 0)]
        while stack:
            prefix, count, first, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise ValueError(f"{self.name}: directory tree deeper than {_MAX_DEPTH}")
            if first + count > n_nodes_max:
                raise ValueError(f"{self.name}: directory children {first}..{first + count - 1} outside tree")
            for idx in range(first, first + count):
                if idx in visited:
                    raise ValueError(f"{self.name}: tree node {idx} referenced twice (corrupt tree)")
                visited.add(idx)
                name_off, flags, a, b = self._node(idx)
                path = prefix + self._name(name_off)
                if flags & FLAG_DIRECTORY:
                    stack.append((path + "/", a, b, depth + 1))
                else:
                    out[path] = RccEntry(b, flags)
        self._entries = dict(sorted(out.items()))
        return self._entries

    def read(self, inner_path: str) -> bytes:
        """Return the (decompressed) bytes of the file ``inner_path`` (leading ``/`` or ``:/`` allowed)."""
        key = inner_path
        for p in (":/", "/"):
            if key.startswith(p):
                key = key[len(p):]
                break
        entries = self.entries()
        if key not in entries:
            raise KeyError(f"{self.name}: no file {inner_path!r} in resource (has {len(entries)} files)")
        return self.read_entry(entries[key], what=key)

    def read_entry(self, entry: RccEntry, what: str = "entry") -> bytes:
        pos = self.data_offset + entry.offset
        (length,) = self._unpack(">I", pos, f"data of {what}")
        start = pos + 4
        if start + length > len(self.blob):
            raise ValueError(f"{self.name}: data of {what} truncated ({length} bytes declared at byte {pos})")
        raw = bytes(self.blob[start:start + length])
        if entry.flags & FLAG_COMPRESSED_ZSTD:
            return _zstd_decompress(raw, f"{self.name}:{what}")
        if entry.flags & FLAG_COMPRESSED:
            if len(raw) < 4:
                raise ValueError(f"{self.name}: compressed data of {what} shorter than its size prefix")
            (expected,) = struct.unpack_from(">I", raw, 0)
            try:
                data = zlib.decompress(raw[4:])
            except zlib.error as e:
                raise ValueError(f"{self.name}: cannot inflate {what}: {e}") from None
            if len(data) != expected:
                raise ValueError(f"{self.name}: {what} inflated to {len(data)} bytes, header says {expected}")
            return data
        return raw


def _zstd_decompress(raw: bytes, what: str) -> bytes:
    try:
        import zstandard  # optional dependency
    except ImportError:
        raise RuntimeError(
            f"{what} is zstd-compressed (rcc flag 4); install the 'zstandard' module to read it"
        ) from None
    try:
        return zstandard.ZstdDecompressor().decompress(raw)
    except zstandard.ZstdError:
        # frames written without a content size need the streaming API
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


def list_rcc(path: PathLike) -> dict[str, RccEntry]:
    """Files inside the rcc at ``path``: ``{inner path: RccEntry(offset, flags)}`` (a tuple)."""
    return RccFile.open(path).entries()


def read_rcc_file(path: PathLike, inner_path: str) -> bytes:
    """The decompressed bytes of ``inner_path`` inside the rcc file at ``path``."""
    return RccFile.open(path).read(inner_path)
