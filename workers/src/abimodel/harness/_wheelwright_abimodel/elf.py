"""Maps one x86-64 ELF shared object (a Linux extension module) as
``ld.so`` would, so that its bindings can point at guarded thunks
(:mod:`guards`) rather than straight at the interpreter: ``PT_LOAD``
segments at their offsets from one base with their protections,
``R_X86_64_RELATIVE`` / ``GLOB_DAT`` / ``JUMP_SLOT`` / ``64`` relocations
applied (all bound now, none lazily), exports from the dynamic symbol table.

Layouts are the System V gABI's and the x86-64 psABI's. What our linker
makes for a module is accepted; anything needing more (TLS, other
relocation types, initialisers: a module built from NASM has none) is
refused with ``ELFError`` rather than run half-loaded.
"""

from __future__ import annotations

import struct

from . import memory

PT_LOAD, PT_DYNAMIC, PT_TLS = 1, 2, 7
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_PLTRELSZ, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_RELA, DT_RELASZ = 0, 2, 4, 5, 6, 7, 8
DT_INIT, DT_FINI, DT_JMPREL, DT_INIT_ARRAY, DT_INIT_ARRAYSZ, DT_GNU_HASH = 12, 13, 23, 25, 27, 0x6FFFFEF5
R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_RELATIVE = 1, 6, 7, 8
SHT_DYNSYM = 11
STB_WEAK = 2


class ELFError(ImportError):
    """The file is not an ELF module this loader maps."""


class Image:
    """An ELF module mapped into this process."""

    def __init__(self, path, region, slide, exports):
        self.path = path
        self.region = region
        self.slide = slide
        self._exports = exports

    def export(self, name: str) -> int:
        """The address of an exported symbol."""
        try:
            return self._exports[name] + self.slide
        except KeyError:
            raise ImportError("%s does not export %s" % (self.path, name)) from None


def _dynsym_count(data: bytes, shoff: int, shnum: int, shentsize: int, hash_off) -> int:
    for i in range(shnum):
        base = shoff + i * shentsize
        if base + 64 > len(data):
            break
        (sh_type,) = struct.unpack_from("<I", data, base + 4)
        if sh_type == SHT_DYNSYM:
            size, entsize = struct.unpack_from("<Q", data, base + 32)[0], struct.unpack_from("<Q", data, base + 56)[0]
            return size // (entsize or 24)
    if hash_off is not None:
        return struct.unpack_from("<II", data, hash_off)[1]  # DT_HASH: nbucket, nchain
    raise ELFError("no dynamic symbol count (no section headers, no DT_HASH)")


def load(path: str, resolve) -> Image:
    """Maps the module at ``path``; ``resolve(name, kind)`` gives the address
    for each symbol it binds (``'function'`` for PLT slots, ``None`` where
    the file does not say)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise ELFError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ELFError("not a 64-bit little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != 3 or e_machine != 62:
        raise ELFError("not an x86-64 shared object (type %d, machine %d)" % (e_type, e_machine))
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == PT_LOAD:
            if p_offset + p_filesz > len(data) or p_filesz > p_memsz:
                raise ELFError("a PT_LOAD segment lies outside the file")
            loads.append((p_vaddr, p_memsz, p_offset, p_filesz, p_flags))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_vaddr, p_memsz)
        elif p_type == PT_TLS:
            raise ELFError("thread-local storage is not supported by this loader")
    if not loads:
        raise ELFError("no PT_LOAD segments")
    low = min(v for v, *_ in loads) & ~(memory.PAGE - 1)
    high = max(v + m for v, m, *_ in loads)
    region = memory.Region(high - low)
    slide = region.base - low
    for vaddr, _memsz, offset, filesz, _flags in loads:
        region.write(vaddr - low, data[offset : offset + filesz])

    def read(vaddr, size):
        return region.read(vaddr - low, size)

    tags = {}
    if dynamic is not None:
        for k in range(dynamic[1] // 16):
            tag, value = struct.unpack("<qQ", read(dynamic[0] + 16 * k, 16))
            if tag == DT_NULL:
                break
            tags[tag] = value
    for forbidden, what in ((DT_INIT, "DT_INIT"), (DT_INIT_ARRAYSZ, "DT_INIT_ARRAY")):
        if tags.get(forbidden):
            raise ELFError("the module has initialisers (%s), which this loader does not run" % what)
    symbols = []
    if DT_SYMTAB in tags:
        hash_off = None
        if DT_HASH in tags:
            hash_off = next((o + tags[DT_HASH] - v for v, _m, o, fs, _f in loads if v <= tags[DT_HASH] < v + fs), None)
        count = _dynsym_count(data, shoff, shnum, shentsize, hash_off)
        strtab = tags[DT_STRTAB]
        for k in range(count):
            st_name, st_info, _other, st_shndx, st_value, _size = struct.unpack("<IBBHQQ", read(tags[DT_SYMTAB] + 24 * k, 24))
            end = st_name
            while read(strtab + end, 1) != b"\0":
                end += 1
            name = read(strtab + st_name, end - st_name).decode("ascii", "replace")
            symbols.append((name, st_shndx, st_value, st_info >> 4))
    exports = {name: value for name, shndx, value, _bind in symbols if shndx != 0 and name}
    bound = {}

    def symbol(index, kind):
        name, shndx, value, bind = symbols[index]
        if shndx != 0:
            return value + slide
        key = (name, kind)
        if key not in bound:
            try:
                bound[key] = resolve(name, kind)
            except LookupError:
                if bind != STB_WEAK:
                    raise ImportError("%s needs %s, which this interpreter does not provide" % (path, name)) from None
                bound[key] = 0
        return bound[key]

    for table, size, kind in ((DT_RELA, DT_RELASZ, None), (DT_JMPREL, DT_PLTRELSZ, "function")):
        if table not in tags:
            continue
        for k in range(tags.get(size, 0) // 24):
            r_offset, r_info, r_addend = struct.unpack("<QQq", read(tags[table] + 24 * k, 24))
            r_type, r_sym = r_info & 0xFFFFFFFF, r_info >> 32
            if r_type == R_X86_64_RELATIVE:
                value = slide + r_addend
            elif r_type in (R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT):
                value = symbol(r_sym, "function" if r_type == R_X86_64_JUMP_SLOT else kind)
            elif r_type == R_X86_64_64:
                value = symbol(r_sym, kind) + r_addend
            else:
                raise ELFError("relocation type %d is not supported by this loader" % r_type)
            region.write_u64(r_offset - low, value)
    for vaddr, memsz, _offset, _filesz, flags in loads:
        prot = (
            (memory.PROT_READ if flags & PF_R else 0)
            | (memory.PROT_WRITE if flags & PF_W else 0)
            | (memory.PROT_EXEC if flags & PF_X else 0)
        )
        region.protect(vaddr - low, vaddr + memsz - vaddr, prot)
    return Image(path, region, slide, exports)
