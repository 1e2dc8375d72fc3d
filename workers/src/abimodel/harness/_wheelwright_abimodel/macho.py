"""Maps one x86-64 Mach-O bundle (``MH_BUNDLE``/``MH_DYLIB``) as dyld would:
segments at their offsets from one base with their protections, the rebase
stream applied, every bind and lazy bind resolved eagerly through a callback
(so ``__stub_helper`` and ``dyld_stub_binder`` never run), exports read from
the symbol table.

Layouts and opcodes are those of Apple's ``mach-o/loader.h``; only what ld64
and ld64.lld emit for a bundle at macOS 10.9 is accepted (no chained fixups,
no fat files), and anything else is refused with ``MachOError``.
"""

from __future__ import annotations

import struct

from . import memory

MH_MAGIC_64 = 0xFEEDFACF
CPU_TYPE_X86_64 = 0x01000007
MH_DYLIB = 6
MH_BUNDLE = 8

LC_REQ_DYLD = 0x80000000
LC_SEGMENT_64 = 0x19
LC_SYMTAB = 0x2
LC_DYLD_INFO = 0x22
LC_DYLD_INFO_ONLY = 0x22 | LC_REQ_DYLD
LC_DYLD_CHAINED_FIXUPS = 0x34 | LC_REQ_DYLD
LC_DYLD_EXPORTS_TRIE = 0x33 | LC_REQ_DYLD

VM_PROT_READ, VM_PROT_WRITE, VM_PROT_EXECUTE = 1, 2, 4
SG_READ_ONLY = 0x10

N_STAB = 0xE0
N_TYPE = 0x0E
N_SECT = 0xE
N_EXT = 0x01

REBASE_TYPE_POINTER = 1
BIND_TYPE_POINTER = 1
BIND_SYMBOL_FLAGS_WEAK_IMPORT = 0x1

STUB_BINDER = "dyld_stub_binder"


class MachOError(ImportError):
    """The file is not a Mach-O image this loader maps."""


def _uleb(data: bytes, pos: int):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise MachOError("truncated ULEB128 in the dyld info")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _sleb(data: bytes, pos: int):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise MachOError("truncated SLEB128 in the dyld info")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                value -= 1 << shift
            return value, pos


class Segment:
    """One ``LC_SEGMENT_64``."""

    def __init__(self, name, vmaddr, vmsize, fileoff, filesize, initprot, flags):
        self.name = name
        self.vmaddr = vmaddr
        self.vmsize = vmsize
        self.fileoff = fileoff
        self.filesize = filesize
        self.initprot = initprot
        self.flags = flags

    def protection(self) -> int:
        """The protection the segment ends with once fixups are done."""
        prot = 0
        if self.initprot & VM_PROT_READ:
            prot |= memory.PROT_READ
        if self.initprot & VM_PROT_WRITE and not self.flags & SG_READ_ONLY:
            prot |= memory.PROT_WRITE
        if self.initprot & VM_PROT_EXECUTE:
            prot |= memory.PROT_EXEC
        return prot


class Bind:
    """One pointer the image wants filled with a symbol's address."""

    def __init__(self, segment, offset, name, addend, weak, lazy):
        self.segment = segment
        self.offset = offset
        self.name = name
        self.addend = addend
        self.weak = weak
        self.lazy = lazy


class MachO:
    """A parsed (not yet mapped) Mach-O image."""

    def __init__(self, data: bytes):
        if len(data) < 32:
            raise MachOError("too short for a Mach-O header")
        magic, cputype, _sub, filetype, ncmds, sizeofcmds, _flags, _res = struct.unpack_from("<IiiIIIII", data, 0)
        if magic != MH_MAGIC_64:
            raise MachOError("not a 64-bit little-endian Mach-O file (magic %#x)" % magic)
        if cputype != CPU_TYPE_X86_64:
            raise MachOError("not an x86-64 Mach-O file (cputype %#x)" % cputype)
        if filetype not in (MH_BUNDLE, MH_DYLIB):
            raise MachOError("a Mach-O file of type %d is not a loadable bundle" % filetype)
        self.data = data
        self.segments = []
        self.symtab = None
        self.dyld_info = None
        pos = 32
        end = 32 + sizeofcmds
        if end > len(data):
            raise MachOError("load commands run past the end of the file")
        for _ in range(ncmds):
            cmd, cmdsize = struct.unpack_from("<II", data, pos)
            if cmdsize < 8 or pos + cmdsize > end:
                raise MachOError("malformed load command %#x" % cmd)
            if cmd == LC_SEGMENT_64:
                segname = data[pos + 8 : pos + 24].rstrip(b"\0").decode("ascii", "replace")
                vmaddr, vmsize, fileoff, filesize, _maxprot, initprot, _nsects, flags = struct.unpack_from(
                    "<QQQQiiII", data, pos + 24
                )
                if fileoff + filesize > len(data) or filesize > vmsize:
                    raise MachOError("segment %s lies outside the file" % segname)
                self.segments.append(Segment(segname, vmaddr, vmsize, fileoff, filesize, initprot, flags))
            elif cmd == LC_SYMTAB:
                self.symtab = struct.unpack_from("<IIII", data, pos + 8)
            elif cmd in (LC_DYLD_INFO, LC_DYLD_INFO_ONLY):
                self.dyld_info = struct.unpack_from("<IIIIIIIIII", data, pos + 8)
            elif cmd == LC_DYLD_CHAINED_FIXUPS:
                raise MachOError("chained fixups (LC_DYLD_CHAINED_FIXUPS) are not supported by this model")
            pos += cmdsize
        if not self.segments:
            raise MachOError("no segments")

    def _stream(self, off: int, size: int) -> bytes:
        if off + size > len(self.data):
            raise MachOError("dyld info runs past the end of the file")
        return self.data[off : off + size]

    def rebases(self) -> list:
        """``(segment index, offset)`` of every pointer to slide."""
        if self.dyld_info is None:
            return []
        data = self._stream(self.dyld_info[0], self.dyld_info[1])
        out = []
        pos = seg = offset = 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            op, imm = byte & 0xF0, byte & 0x0F
            if op == 0x00:  # REBASE_OPCODE_DONE
                break
            elif op == 0x10:  # SET_TYPE_IMM
                if imm != REBASE_TYPE_POINTER:
                    raise MachOError("rebase type %d is not supported" % imm)
            elif op == 0x20:  # SET_SEGMENT_AND_OFFSET_ULEB
                seg = imm
                offset, pos = _uleb(data, pos)
            elif op == 0x30:  # ADD_ADDR_ULEB
                delta, pos = _uleb(data, pos)
                offset += delta
            elif op == 0x40:  # ADD_ADDR_IMM_SCALED
                offset += imm * 8
            elif op == 0x50:  # DO_REBASE_IMM_TIMES
                for _ in range(imm):
                    out.append((seg, offset))
                    offset += 8
            elif op == 0x60:  # DO_REBASE_ULEB_TIMES
                count, pos = _uleb(data, pos)
                for _ in range(count):
                    out.append((seg, offset))
                    offset += 8
            elif op == 0x70:  # DO_REBASE_ADD_ADDR_ULEB
                delta, pos = _uleb(data, pos)
                out.append((seg, offset))
                offset += 8 + delta
            elif op == 0x80:  # DO_REBASE_ULEB_TIMES_SKIPPING_ULEB
                count, pos = _uleb(data, pos)
                skip, pos = _uleb(data, pos)
                for _ in range(count):
                    out.append((seg, offset))
                    offset += 8 + skip
            else:
                raise MachOError("unknown rebase opcode %#x" % byte)
        return out

    def binds(self) -> list:
        """Every bind, then every lazy bind, as :class:`Bind`."""
        if self.dyld_info is None:
            return []
        out = self._binds(self._stream(self.dyld_info[2], self.dyld_info[3]), lazy=False)
        out += self._binds(self._stream(self.dyld_info[6], self.dyld_info[7]), lazy=True)
        return out

    def _binds(self, data: bytes, lazy: bool) -> list:
        out = []
        pos = seg = offset = addend = 0
        name = None
        weak = False

        def bind():
            if name is None:
                raise MachOError("a bind with no symbol")
            out.append(Bind(seg, offset, name, addend, weak, lazy))

        while pos < len(data):
            byte = data[pos]
            pos += 1
            op, imm = byte & 0xF0, byte & 0x0F
            if op == 0x00:  # BIND_OPCODE_DONE: ends one lazy entry, or the stream
                if lazy:
                    continue
                break
            elif op in (0x10, 0x30):  # SET_DYLIB_ORDINAL_IMM / SET_DYLIB_SPECIAL_IMM
                pass  # every lookup is flat: the interpreter is the only provider
            elif op == 0x20:  # SET_DYLIB_ORDINAL_ULEB
                _, pos = _uleb(data, pos)
            elif op == 0x40:  # SET_SYMBOL_TRAILING_FLAGS_IMM
                nul = data.index(b"\0", pos)
                name = data[pos:nul].decode("ascii", "replace")
                pos = nul + 1
                weak = bool(imm & BIND_SYMBOL_FLAGS_WEAK_IMPORT)
            elif op == 0x50:  # SET_TYPE_IMM
                if imm != BIND_TYPE_POINTER:
                    raise MachOError("bind type %d is not supported" % imm)
            elif op == 0x60:  # SET_ADDEND_SLEB
                addend, pos = _sleb(data, pos)
            elif op == 0x70:  # SET_SEGMENT_AND_OFFSET_ULEB
                seg = imm
                offset, pos = _uleb(data, pos)
            elif op == 0x80:  # ADD_ADDR_ULEB
                delta, pos = _uleb(data, pos)
                offset = (offset + delta) & 0xFFFFFFFFFFFFFFFF
            elif op == 0x90:  # DO_BIND
                bind()
                offset += 8
            elif op == 0xA0:  # DO_BIND_ADD_ADDR_ULEB
                delta, pos = _uleb(data, pos)
                bind()
                offset = (offset + 8 + delta) & 0xFFFFFFFFFFFFFFFF
            elif op == 0xB0:  # DO_BIND_ADD_ADDR_IMM_SCALED
                bind()
                offset += 8 + imm * 8
            elif op == 0xC0:  # DO_BIND_ULEB_TIMES_SKIPPING_ULEB
                count, pos = _uleb(data, pos)
                skip, pos = _uleb(data, pos)
                for _ in range(count):
                    bind()
                    offset += 8 + skip
            else:
                raise MachOError("unknown bind opcode %#x" % byte)
        return out

    def exports(self) -> dict:
        """Defined external symbols: name (with Mach-O's leading ``_``) -> vmaddr."""
        if self.symtab is None:
            return {}
        symoff, nsyms, stroff, strsize = self.symtab
        out = {}
        for i in range(nsyms):
            strx, ntype, _sect, _desc, value = struct.unpack_from("<IBBHQ", self.data, symoff + 16 * i)
            if ntype & N_STAB or not ntype & N_EXT or ntype & N_TYPE != N_SECT:
                continue
            if strx >= strsize:
                continue
            start = stroff + strx
            name = self.data[start : self.data.index(b"\0", start)].decode("ascii", "replace")
            out[name] = value
        return out


class Image:
    """A Mach-O image mapped into this process."""

    def __init__(self, path: str, region, slide: int, exports: dict):
        self.path = path
        self.region = region
        self.slide = slide
        self._exports = exports

    @property
    def base(self) -> int:
        return self.region.base

    def export(self, name: str) -> int:
        """The address of an exported C symbol (``PyInit_x``, without the ``_``)."""
        try:
            return self._exports["_" + name] + self.slide
        except KeyError:
            raise ImportError("%s does not export %s" % (self.path, name)) from None


def c_name(symbol: str) -> str:
    """The C name of a Mach-O symbol: ``_PyLong_FromLong`` -> ``PyLong_FromLong``."""
    return symbol[1:] if symbol.startswith("_") else symbol


def load(path: str, resolve, trap: int) -> Image:
    """Maps the image at ``path``.

    ``resolve(name, kind)`` gives the address for a C symbol name (kind is
    ``'function'`` for lazy binds and ``None`` where the container does not
    say); ``trap`` is the address ``dyld_stub_binder`` is bound to, code that
    stops the process, since no lazy binding is left for it to do."""
    with open(path, "rb") as f:
        data = f.read()
    image = MachO(data)
    low = min(s.vmaddr for s in image.segments)
    high = max(s.vmaddr + s.vmsize for s in image.segments)
    region = memory.Region(high - low)
    slide = region.base - low
    for seg in image.segments:
        region.write(seg.vmaddr - low, data[seg.fileoff : seg.fileoff + seg.filesize])

    def where(seg_index: int, offset: int) -> int:
        if seg_index >= len(image.segments):
            raise MachOError("fixup in segment %d, which does not exist" % seg_index)
        seg = image.segments[seg_index]
        if offset + 8 > seg.vmsize:
            raise MachOError("fixup at %s+%#x lies outside the segment" % (seg.name, offset))
        return seg.vmaddr - low + offset

    for seg_index, offset in image.rebases():
        at = where(seg_index, offset)
        region.write_u64(at, region.read_u64(at) + slide)
    for b in image.binds():
        at = where(b.segment, b.offset)
        if b.name == STUB_BINDER:
            address = trap
        else:
            try:
                address = resolve(c_name(b.name), "function" if b.lazy else None)
            except LookupError:
                if not b.weak:
                    raise ImportError(
                        "%s needs %s, which this interpreter does not provide" % (path, c_name(b.name))
                    ) from None
                address = 0
        region.write_u64(at, address + b.addend)
    for seg in image.segments:
        if seg.vmsize:
            region.protect(seg.vmaddr - low, seg.vmsize, seg.protection())
    return Image(path, region, slide, image.exports())
