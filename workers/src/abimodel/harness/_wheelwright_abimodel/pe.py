"""Maps one x86-64 PE DLL (a ``.pyd``) as the Windows loader would: sections
at their RVAs from one base with their protections, ``IMAGE_REL_BASED_DIR64``
base relocations applied for the actual base, every import-table slot filled
through a callback, exports read from the export directory. No ``DllMain``
runs (our linker makes none: ``/NOENTRY``), TLS callbacks are refused.

Layouts are those of Microsoft's PE format specification.
"""

from __future__ import annotations

import struct

from . import memory

IMAGE_FILE_MACHINE_AMD64 = 0x8664
PE32_PLUS = 0x20B

DIR_EXPORT, DIR_IMPORT, DIR_BASERELOC, DIR_TLS = 0, 1, 5, 9

IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_READ = 0x40000000
IMAGE_SCN_MEM_WRITE = 0x80000000

IMAGE_REL_BASED_ABSOLUTE = 0
IMAGE_REL_BASED_DIR64 = 10

IMAGE_ORDINAL_FLAG64 = 1 << 63


class PEError(ImportError):
    """The file is not a PE image this loader maps."""


class Section:
    """One section header."""

    def __init__(self, name, rva, vsize, raw_off, raw_size, flags):
        self.name = name
        self.rva = rva
        self.vsize = vsize
        self.raw_off = raw_off
        self.raw_size = raw_size
        self.flags = flags

    def protection(self) -> int:
        prot = 0
        if self.flags & IMAGE_SCN_MEM_READ:
            prot |= memory.PROT_READ
        if self.flags & IMAGE_SCN_MEM_WRITE:
            prot |= memory.PROT_WRITE
        if self.flags & IMAGE_SCN_MEM_EXECUTE:
            prot |= memory.PROT_EXEC
        return prot


class Import:
    """One import-table slot: which DLL, which name, where the slot is (RVA)."""

    def __init__(self, dll, name, slot_rva):
        self.dll = dll
        self.name = name
        self.slot_rva = slot_rva


class PE:
    """A parsed (not yet mapped) PE32+ image."""

    def __init__(self, data: bytes):
        if data[:2] != b"MZ" or len(data) < 0x40:
            raise PEError("not a PE file (no MZ header)")
        (lfanew,) = struct.unpack_from("<I", data, 0x3C)
        if data[lfanew : lfanew + 4] != b"PE\0\0":
            raise PEError("not a PE file (no PE signature)")
        machine, nsections, _ts, _sym, _nsym, opt_size, _chars = struct.unpack_from("<HHIIIHH", data, lfanew + 4)
        if machine != IMAGE_FILE_MACHINE_AMD64:
            raise PEError("not an x86-64 PE file (machine %#x)" % machine)
        opt = lfanew + 24
        (magic,) = struct.unpack_from("<H", data, opt)
        if magic != PE32_PLUS:
            raise PEError("not a PE32+ image (optional header magic %#x)" % magic)
        (self.image_base,) = struct.unpack_from("<Q", data, opt + 24)
        (self.size_of_image, self.size_of_headers) = struct.unpack_from("<II", data, opt + 56)
        (ndirs,) = struct.unpack_from("<I", data, opt + 108)
        self.dirs = [struct.unpack_from("<II", data, opt + 112 + 8 * i) for i in range(min(ndirs, 16))]
        self.dirs += [(0, 0)] * (16 - len(self.dirs))
        self.data = data
        self.sections = []
        pos = opt + opt_size
        for _ in range(nsections):
            name = data[pos : pos + 8].rstrip(b"\0").decode("ascii", "replace")
            vsize, rva, raw_size, raw_off = struct.unpack_from("<IIII", data, pos + 8)
            (flags,) = struct.unpack_from("<I", data, pos + 36)
            if raw_off + min(raw_size, vsize or raw_size) > len(data):
                raise PEError("section %s lies outside the file" % name)
            self.sections.append(Section(name, rva, vsize, raw_off, raw_size, flags))
            pos += 40
        if self.dirs[DIR_TLS][1]:
            raise PEError("the image has TLS callbacks, which this model does not run")


class Image:
    """A PE image mapped into this process."""

    def __init__(self, path: str, region, exports: dict):
        self.path = path
        self.region = region
        self._exports = exports

    @property
    def base(self) -> int:
        return self.region.base

    def export(self, name: str) -> int:
        """The address of an exported symbol, by name."""
        try:
            return self.region.base + self._exports[name]
        except KeyError:
            raise ImportError("%s does not export %s" % (self.path, name)) from None


def _cstring(region, rva: int) -> str:
    out = bytearray()
    while True:
        byte = region.read(rva, 1)
        if byte == b"\0":
            return out.decode("ascii", "replace")
        out += byte
        rva += 1


def path_of(pe: PE) -> str:
    return getattr(pe, "path", "the image")


def _imports(pe: PE, region) -> list:
    rva, size = pe.dirs[DIR_IMPORT]
    out = []
    if not size:
        return out
    while True:
        lookup, _ts, _fwd, name_rva, iat = struct.unpack("<IIIII", region.read(rva, 20))
        if not (lookup or name_rva or iat):
            return out
        dll = _cstring(region, name_rva)
        table = lookup or iat
        i = 0
        while True:
            entry = region.read_u64(table + 8 * i)
            if not entry:
                break
            if entry & IMAGE_ORDINAL_FLAG64:
                raise PEError("%s imports ordinal %d of %s; only imports by name are supported" % (path_of(pe), entry & 0xFFFF, dll))
            out.append(Import(dll, _cstring(region, (entry & 0x7FFFFFFF) + 2), iat + 8 * i))
            i += 1
        rva += 20


def _exports(pe: PE, region) -> dict:
    rva, size = pe.dirs[DIR_EXPORT]
    if not size:
        return {}
    (_c, _t, _v, _name, base, nfuncs, nnames, funcs, names, ordinals) = struct.unpack(
        "<IIIIIIIIII", region.read(rva, 40)
    )
    out = {}
    for i in range(nnames):
        (name_rva,) = struct.unpack("<I", region.read(names + 4 * i, 4))
        (ordinal,) = struct.unpack("<H", region.read(ordinals + 2 * i, 2))
        if ordinal >= nfuncs:
            raise PEError("export ordinal %d out of range" % ordinal)
        (func_rva,) = struct.unpack("<I", region.read(funcs + 4 * ordinal, 4))
        if rva <= func_rva < rva + size:
            continue  # a forwarder ("OTHER.name"), not code in this image
        out[_cstring(region, name_rva)] = func_rva
    return out


def load(path: str, resolve) -> Image:
    """Maps the image at ``path``; ``resolve(imp)`` gives the address to put in
    the import slot of :class:`Import` ``imp`` (a thunk for a function, the
    interpreter's own variable for data)."""
    with open(path, "rb") as f:
        data = f.read()
    pe = PE(data)
    pe.path = path
    region = memory.Region(pe.size_of_image)
    region.write(0, data[: pe.size_of_headers])
    for s in pe.sections:
        size = min(s.raw_size, s.vsize) if s.vsize else s.raw_size
        if s.rva + max(s.vsize, size) > pe.size_of_image:
            raise PEError("section %s lies outside the image" % s.name)
        region.write(s.rva, data[s.raw_off : s.raw_off + size])
    delta = region.base - pe.image_base
    rva, size = pe.dirs[DIR_BASERELOC]
    end = rva + size
    while rva + 8 <= end:
        page, block = struct.unpack("<II", region.read(rva, 8))
        if block < 8:
            raise PEError("malformed base relocation block at %#x" % rva)
        entries = region.read(rva + 8, block - 8)
        for (entry,) in struct.iter_unpack("<H", entries[: len(entries) & ~1]):
            kind, offset = entry >> 12, entry & 0xFFF
            if kind == IMAGE_REL_BASED_DIR64:
                region.write_u64(page + offset, region.read_u64(page + offset) + delta)
            elif kind != IMAGE_REL_BASED_ABSOLUTE:
                raise PEError("base relocation type %d is not supported" % kind)
        rva += block
    for imp in _imports(pe, region):
        region.write_u64(imp.slot_rva, resolve(imp))
    exports = _exports(pe, region)
    region.protect(0, pe.size_of_headers, memory.PROT_READ)
    for s in pe.sections:
        if s.vsize or s.raw_size:
            region.protect(s.rva, max(s.vsize, s.raw_size), s.protection())
    return Image(path, region, exports)
