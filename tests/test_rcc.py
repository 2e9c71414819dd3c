"""Tests for hiif.data.rcc against small Qt resource files written by a tiny writer below."""

from __future__ import annotations

import os
import struct
import sys
import zlib

import pytest

from hiif.data.rcc import (
    FLAG_COMPRESSED,
    FLAG_COMPRESSED_ZSTD,
    RccFile,
    list_rcc,
    read_rcc_file,
)

# ----------------------------------------------------------------------------------------------
# minimal rcc writer (layout as produced by Qt's rcc: header, data, names, tree)


def _qt_hash(name: str) -> int:
    # the reader ignores the hash; any 32-bit value keeps the layout realistic
    return zlib.crc32(name.encode("utf-16-be"))


def write_rcc(files: dict[str, bytes], version: int = 2, compressed: set[str] = frozenset(),
              zstd: set[str] = frozenset(), magic: bytes = b"qres") -> bytes:
    # nested dict: directories are dicts, files are paths (str) into `files`
    root: dict = {}
    for path in files:
        parts = path.split("/")
        d = root
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = path

    names = bytearray()
    name_offsets: dict[str, int] = {}

    def name_off(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            enc = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(enc) // 2, _qt_hash(name)) + enc)
        return name_offsets[name]

    data = bytearray()

    def add_data(path: str) -> tuple[int, int]:
        raw = files[path]
        flags = 0
        if path in compressed:
            raw = struct.pack(">I", len(raw)) + zlib.compress(raw, 9)
            flags = FLAG_COMPRESSED
        elif path in zstd:
            raw = b"\x28\xb5\x2f\xfd" + raw  # not a real frame; only the flag matters here
            flags = FLAG_COMPRESSED_ZSTD
        off = len(data)
        data.extend(struct.pack(">I", len(raw)) + raw)
        return off, flags

    # breadth-first node list; children of a directory are contiguous
    nodes: list[tuple] = [("", root)]
    encoded: list[bytes] = [b""]
    queue = [0]
    while queue:
        idx = queue.pop(0)
        name, entry = nodes[idx]
        if isinstance(entry, dict):
            children = sorted(entry.items(), key=lambda kv: _qt_hash(kv[0]))
            first = len(nodes)
            for child in children:
                nodes.append(child)
                encoded.append(b"")
                queue.append(len(nodes) - 1)
            rec = struct.pack(">IHII", name_off(name), 2, len(children), first)
        else:
            off, flags = add_data(entry)
            rec = struct.pack(">IHHHI", name_off(name), flags, 0, 1, off)
        if version >= 2:
            rec += struct.pack(">Q", 1_700_000_000_000)
        encoded[idx] = rec
    tree = b"".join(encoded)
    assert len(tree) == len(nodes) * (14 if version == 1 else 22)

    header_len = 20 + (4 if version >= 3 else 0)
    data_off = header_len
    names_off = data_off + len(data)
    tree_off = names_off + len(names)
    header = magic + struct.pack(">4I", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + bytes(data) + bytes(names) + tree


FILES = {
    "top.txt": b"hello rcc\n",
    "images/a.webp": bytes(range(256)) * 7,
    "images/deep/er/b.bin": os.urandom(3000),
    "images/deep/c.txt": b"x" * 5000,
    "gcompris/src/activities/clickgame/resource/sea1.webp": b"RIFF" + os.urandom(1234),
    "unicodé/ü-👍.txt": "ünïcode".encode(),
    "empty.dat": b"",
}


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip(tmp_path, version, compress):
    compressed = {"images/a.webp", "images/deep/c.txt", "empty.dat"} if compress else set()
    path = tmp_path / f"v{version}.rcc"
    path.write_bytes(write_rcc(FILES, version=version, compressed=compressed))

    listing = list_rcc(path)
    assert set(listing) == set(FILES)
    for inner, entry in listing.items():
        offset, flags = entry  # a plain (offset, flags) tuple
        assert isinstance(offset, int)
        assert flags == (FLAG_COMPRESSED if inner in compressed else 0)
    for inner, content in FILES.items():
        assert read_rcc_file(path, inner) == content
    rf = RccFile.open(path)
    assert rf.version == version
    assert rf.read(":/images/deep/er/b.bin") == FILES["images/deep/er/b.bin"]
    assert rf.read("/top.txt") == FILES["top.txt"]


def test_compressed_data_really_compressed(tmp_path):
    path = tmp_path / "z.rcc"
    blob = write_rcc(FILES, compressed={"images/deep/c.txt"})
    path.write_bytes(blob)
    assert b"x" * 5000 not in blob
    assert read_rcc_file(path, "images/deep/c.txt") == b"x" * 5000


def test_invalid_magic(tmp_path):
    path = tmp_path / "bad.rcc"
    path.write_bytes(write_rcc(FILES, magic=b"qrez"))
    with pytest.raises(ValueError, match="magic"):
        list_rcc(path)
    path.write_bytes(b"PNG")
    with pytest.raises(ValueError, match="not a Qt binary resource"):
        read_rcc_file(path, "top.txt")


def test_unsupported_version(tmp_path):
    blob = bytearray(write_rcc(FILES, version=2))
    blob[4:8] = struct.pack(">I", 9)
    with pytest.raises(ValueError, match="version 9"):
        RccFile(bytes(blob))


def test_missing_file(tmp_path):
    path = tmp_path / "m.rcc"
    path.write_bytes(write_rcc(FILES))
    with pytest.raises(KeyError, match="nope"):
        read_rcc_file(path, "images/nope.webp")
    with pytest.raises(KeyError):  # directories are not files
        read_rcc_file(path, "images/deep")


def test_truncated(tmp_path):
    blob = write_rcc(FILES, version=1)
    with pytest.raises(ValueError):
        RccFile(blob[: len(blob) - 10]).entries()


def test_bad_zlib_size(tmp_path):
    files = {"f.bin": b"abc" * 100}
    blob = bytearray(write_rcc(files, version=2, compressed={"f.bin"}))
    data_off = struct.unpack_from(">I", blob, 12)[0]
    struct.pack_into(">I", blob, data_off + 4, 12345)  # wrong uncompressed size
    with pytest.raises(ValueError, match="12345"):
        RccFile(bytes(blob)).read("f.bin")


def test_zstd_without_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    rf = RccFile(write_rcc({"z.bin": b"data"}, version=3, zstd={"z.bin"}))
    assert rf.entries()["z.bin"].flags == FLAG_COMPRESSED_ZSTD
    with pytest.raises(RuntimeError, match="zstandard"):
        rf.read("z.bin")
