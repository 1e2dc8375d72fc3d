"""Memory for hand-mapped images: anonymous mappings with per-range protections,
and the addresses of the running interpreter's own C-API symbols.

Everything goes through libc with ctypes: no compiler, no extension module.
"""

from __future__ import annotations

import ctypes
import struct

PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4

_MAP_PRIVATE = 0x02
_MAP_ANONYMOUS = 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value

PAGE = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_dlsym = _libc.dlsym
_dlsym.restype = ctypes.c_void_p
_dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


class MemoryError_(OSError):
    """A mapping or protection change the kernel refused."""


def page_align(size: int) -> int:
    """``size`` rounded up to whole pages."""
    return (size + PAGE - 1) & ~(PAGE - 1)


class Region:
    """One anonymous private mapping, readable and writable until protected.

    Regions are never unmapped: like a ``dlopen``-ed extension module, a
    mapped image lives as long as the interpreter (CPython keeps pointers
    into it: method tables, docstrings, code).
    """

    def __init__(self, size: int):
        self.size = page_align(max(size, 1))
        base = _mmap(None, self.size, PROT_READ | PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
        if base is None or base == _MAP_FAILED:
            raise MemoryError_(ctypes.get_errno(), "mmap of %d bytes failed" % self.size)
        self.base = base

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError("range %#x+%#x is outside the %#x-byte region" % (offset, length, self.size))

    def write(self, offset: int, data: bytes) -> None:
        """Copies ``data`` to ``base + offset``."""
        self._check(offset, len(data))
        ctypes.memmove(self.base + offset, data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        """The bytes at ``base + offset``."""
        self._check(offset, length)
        return ctypes.string_at(self.base + offset, length)

    def read_u64(self, offset: int) -> int:
        return struct.unpack("<Q", self.read(offset, 8))[0]

    def write_u64(self, offset: int, value: int) -> None:
        self.write(offset, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def protect(self, offset: int, length: int, prot: int) -> None:
        """Sets the protection of the pages holding ``[offset, offset+length)``."""
        start = offset & ~(PAGE - 1)
        end = page_align(offset + length)
        self._check(start, end - start)
        if _mprotect(self.base + start, end - start, prot) != 0:
            raise MemoryError_(ctypes.get_errno(), "mprotect(%#x, %#x, %d) failed" % (self.base + start, end - start, prot))


def map_code(blobs: list) -> list:
    """Maps machine code blobs into one fresh read+execute region (written
    first, then made non-writable: never writable and executable at once);
    returns each blob's address. Blobs start on 16-byte boundaries."""
    offsets = []
    total = 0
    for blob in blobs:
        offsets.append(total)
        total += (len(blob) + 15) & ~15
    region = Region(total)
    for off, blob in zip(offsets, blobs):
        region.write(off, blob)
    region.protect(0, region.size, PROT_READ | PROT_EXEC)
    return [region.base + off for off in offsets]


def read_u64(address: int) -> int:
    """The 64-bit little-endian word at an absolute address."""
    return struct.unpack("<Q", ctypes.string_at(address, 8))[0]


def read_i32(address: int) -> int:
    return struct.unpack("<i", ctypes.string_at(address, 4))[0]


def write_u64(address: int, value: int) -> None:
    """Stores a 64-bit word at an absolute address (which must be writable)."""
    ctypes.memmove(address, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF), 8)


def process_symbol(name: str) -> int:
    """The running interpreter's own address for a C-API symbol: the function's
    entry for a function, the variable's address for data (``PyExc_TypeError``
    gives ``&PyExc_TypeError``, ``_Py_NoneStruct`` gives ``&_Py_NoneStruct``).

    Raises ``LookupError`` when this interpreter does not export it."""
    address = _dlsym(None, name.encode())
    if not address:
        raise LookupError(name)
    return address


def _mappings() -> list:
    """Every mapping of this process, as ``(low, high, executable)``."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 2:
                lo, hi = fields[0].split("-")
                found.append((int(lo, 16), int(hi, 16), "x" in fields[1]))
    return found


# The mappings as last read. The interpreter's own (where every C-API
# function and variable lies) never move; a library mapped later is seen by
# the fresh read a miss makes. Read at import: a warm runner imports this
# before it forks, and its children start with it (reading the maps costs
# ~1 ms, once per C-API symbol a module binds otherwise).
_known = _mappings()


def is_code(address: int) -> bool:
    """Whether ``address`` lies in an executable mapping of this process: a
    PE import table does not say whether a name is a function or data, the
    interpreter's own mappings do."""
    global _known
    for lo, hi, executable in _known:
        if lo <= address < hi:
            return executable
    _known = _mappings()
    return any(lo <= address < hi and executable for lo, hi, executable in _known)


def _protection_of(address: int) -> int:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                perms = fields[1]
                return (
                    (PROT_READ if "r" in perms else 0)
                    | (PROT_WRITE if "w" in perms else 0)
                    | (PROT_EXEC if "x" in perms else 0)
                )
    raise ValueError("%#x is not mapped" % address)


def patch_u64(address: int, value: int) -> None:
    """Stores a 64-bit word into a mapped image even where its section is
    read-only (a ``const`` method table): the page is made writable for the
    store and given its protection back."""
    prot = _protection_of(address)
    if prot & PROT_WRITE:
        write_u64(address, value)
        return
    page = address & ~(PAGE - 1)
    span = page_align(address + 8) - page
    if _mprotect(page, span, prot | PROT_WRITE) != 0:
        raise MemoryError_(ctypes.get_errno(), "cannot make %#x writable" % page)
    try:
        write_u64(address, value)
    finally:
        _mprotect(page, span, prot)
