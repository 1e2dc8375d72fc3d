"""The one generator of machine code: every bridge between two calling
conventions (a Win64 -> System V thunk for each C-API function a Windows
module imports, a System V -> Win64 stub for each function it hands to
CPython) is made by :func:`bridge`, so the ABI guards have one place to go.

A bridge spills every argument register of the incoming convention to its
frame first and then loads each outgoing argument from the spill area or the
caller's stack, so no parallel-move ordering can go wrong whatever the
placement. Encodings are the Intel SDM's; only ``[rsp + disp32]`` operands
are used, so each instruction has one form.
"""

from __future__ import annotations

import struct

RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)

REG = {
    "rax": RAX, "rcx": RCX, "rdx": RDX, "rbx": RBX, "rsp": RSP, "rbp": RBP, "rsi": RSI, "rdi": RDI,
    "r8": R8, "r9": R9, "r10": R10, "r11": R11, "r12": R12, "r13": R13, "r14": R14, "r15": R15,
}

SYSV_INT = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
SYSV_XMM = 8
WIN64_INT = ("rcx", "rdx", "r8", "r9")
WIN64_SHADOW = 32


def _rex(w: bool, reg: int, rm: int) -> bytes:
    value = 0x40 | (8 if w else 0) | (4 if reg & 8 else 0) | (1 if rm & 8 else 0)
    return bytes([value]) if value != 0x40 else b""


def _rsp_mem(reg: int, disp: int) -> bytes:
    # mod=10 (disp32), rm=100 (SIB follows), SIB: no index, base rsp.
    return bytes([0x80 | ((reg & 7) << 3) | 4, 0x24]) + struct.pack("<i", disp)


def store(reg: str, disp: int) -> bytes:
    """``mov [rsp+disp], r64``"""
    r = REG[reg]
    return bytes([0x48 | (4 if r & 8 else 0), 0x89]) + _rsp_mem(r, disp)


def load(reg: str, disp: int) -> bytes:
    """``mov r64, [rsp+disp]``"""
    r = REG[reg]
    return bytes([0x48 | (4 if r & 8 else 0), 0x8B]) + _rsp_mem(r, disp)


def load_sx32(reg: str, disp: int) -> bytes:
    """``movsxd r64, dword [rsp+disp]``: a 32-bit signed argument widened."""
    r = REG[reg]
    return bytes([0x48 | (4 if r & 8 else 0), 0x63]) + _rsp_mem(r, disp)


def load_zx32(reg: str, disp: int) -> bytes:
    """``mov r32, dword [rsp+disp]``: a 32-bit unsigned argument widened."""
    r = REG[reg]
    return _rex(False, r, 0) + b"\x8b" + _rsp_mem(r, disp)


def _sse(prefix: int, op: int, xmm: int, disp: int) -> bytes:
    return bytes([prefix]) + _rex(False, xmm, 0) + bytes([0x0F, op]) + _rsp_mem(xmm, disp)


def store_sd(xmm: int, disp: int) -> bytes:
    """``movsd [rsp+disp], xmmN``"""
    return _sse(0xF2, 0x11, xmm, disp)


def load_sd(xmm: int, disp: int) -> bytes:
    """``movsd xmmN, [rsp+disp]``"""
    return _sse(0xF2, 0x10, xmm, disp)


def load_ss(xmm: int, disp: int) -> bytes:
    """``movss xmmN, [rsp+disp]``"""
    return _sse(0xF3, 0x10, xmm, disp)


def store_dqu(xmm: int, disp: int) -> bytes:
    """``movdqu [rsp+disp], xmmN``"""
    return _sse(0xF3, 0x7F, xmm, disp)


def load_dqu(xmm: int, disp: int) -> bytes:
    """``movdqu xmmN, [rsp+disp]``"""
    return _sse(0xF3, 0x6F, xmm, disp)


def push(reg: str) -> bytes:
    r = REG[reg]
    return (b"\x41" if r & 8 else b"") + bytes([0x50 + (r & 7)])


def pop(reg: str) -> bytes:
    r = REG[reg]
    return (b"\x41" if r & 8 else b"") + bytes([0x58 + (r & 7)])


def sub_rsp(n: int) -> bytes:
    return b"\x48\x81\xec" + struct.pack("<i", n)


def add_rsp(n: int) -> bytes:
    return b"\x48\x81\xc4" + struct.pack("<i", n)


def mov_imm64(reg: str, value: int) -> bytes:
    """``mov r64, imm64``"""
    r = REG[reg]
    return bytes([0x48 | (1 if r & 8 else 0), 0xB8 + (r & 7)]) + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)


def mov_eax_imm(value: int) -> bytes:
    """``mov eax, imm32`` (sets ``al`` for a System V variadic call)."""
    return b"\xb8" + struct.pack("<I", value)


def call_r11() -> bytes:
    return b"\x41\xff\xd3"


def jmp_r11() -> bytes:
    return b"\x41\xff\xe3"


def lea(reg: str, disp: int) -> bytes:
    """``lea r64, [rsp+disp]``"""
    r = REG[reg]
    return bytes([0x48 | (4 if r & 8 else 0), 0x8D]) + _rsp_mem(r, disp)


def cmp_r11(reg: str) -> bytes:
    """``cmp reg, r11`` (``cmp r/m64, r64`` with r/m = reg)."""
    r = REG[reg]
    return bytes([0x4C | (1 if r & 8 else 0), 0x39, 0xC0 | (R11 & 7) << 3 | (r & 7)])


def mov_rdi_at_r11() -> bytes:
    """``mov rdi, [r11]``"""
    return b"\x49\x8b\x3b"


def or_r10d(bits: int) -> bytes:
    """``or r10d, imm32``"""
    return b"\x41\x81\xca" + struct.pack("<I", bits)


XOR_R10D = b"\x45\x31\xd2"


def pcmpeqb_at_rcx(xmm: int, disp: int) -> bytes:
    """``pcmpeqb xmmN, [rcx+disp32]``"""
    return b"\x66" + (b"\x44" if xmm & 8 else b"") + b"\x0f\x74" + bytes([0x80 | (xmm & 7) << 3 | 1]) + struct.pack("<i", disp)


def movdqu_from_rcx(xmm: int, disp: int) -> bytes:
    """``movdqu xmmN, [rcx+disp32]``"""
    return b"\xf3" + (b"\x44" if xmm & 8 else b"") + b"\x0f\x6f" + bytes([0x80 | (xmm & 7) << 3 | 1]) + struct.pack("<i", disp)


def pmovmskb_edx(xmm: int) -> bytes:
    """``pmovmskb edx, xmmN``"""
    return b"\x66" + (b"\x41" if xmm & 8 else b"") + b"\x0f\xd7" + bytes([0xC0 | 2 << 3 | (xmm & 7)])


CMP_EDX_FFFF = b"\x81\xfa\xff\xff\x00\x00"


def je8(n: int) -> bytes:
    return bytes([0x74, n])


def jz32(n: int) -> bytes:
    return b"\x0f\x84" + struct.pack("<i", n)


RET = b"\xc3"

# Where each incoming argument register is spilled: slot index in the spill area.
_SPILL_INT = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
_SPILL_SLOTS = len(_SPILL_INT) + SYSV_XMM


class Move:
    """One argument's journey: from where the caller put it to where the
    callee reads it, with its kind (``ptr``, ``i64``, ``i32``, ``u32``,
    ``f64``, ``f32``).

    ``source`` is ``("int", reg)``, ``("xmm", n)`` or ``("stack", offset)``
    with the offset from ``rsp`` at the bridge's entry (the return address is
    at 0); ``dest`` is ``("int", reg)``, ``("xmm", n)`` or ``("stack",
    offset)`` from ``rsp`` at the call."""

    def __init__(self, kind, source, dest):
        self.kind = kind
        self.source = source
        self.dest = dest

    def __repr__(self):
        return "Move(%r, %r, %r)" % (self.kind, self.source, self.dest)


def bridge(
    target: int, moves: list, out_stack: int, *, save_win64_callee: bool, vector_count=None, hook=None, guard=None
) -> bytes:
    """The machine code of one bridge that calls ``target``.

    - ``moves``: every argument, as :class:`Move`.
    - ``out_stack``: bytes of outgoing stack the callee may use (its stack
      arguments, and for a Win64 callee the 32-byte shadow space).
    - ``save_win64_callee``: the caller is Win64 and the callee System V, so
      rdi, rsi and xmm6-xmm15 (callee-saved only under Win64) are saved and
      restored around the call.
    - ``vector_count``: for a System V variadic callee, the value of ``al``.
    - ``hook``: a System V function called first with the first two
      arguments (as the caller passed them), for tables that must be
      rewritten before CPython sees them.
    - ``guard``: a :class:`Guard` (the ABI guard on a call from CPython into
      the module, checkasm-style): the callee-saved registers of the
      callee's ABI are saved, filled with random values before the call and
      compared after it; on a mismatch, or when a call from the module into
      the C API was made with a misaligned ``rsp`` meanwhile (the guard's
      ``pending`` word), the real values are put back, ``guard.report`` is
      called and the call fails with ``SystemError`` (see
      :class:`Guard`). Only for a System V caller (not with
      ``save_win64_callee``).

    Return values need no bridge: both conventions return in rax / xmm0.
    """
    if guard is not None and save_win64_callee:
        raise ValueError("a guard watches calls from a System V caller")
    out_stack = (out_stack + 15) & ~15
    xmm_save = out_stack
    spill = xmm_save + (160 if save_win64_callee else 0)
    frame = spill + 8 * _SPILL_SLOTS
    # The guard's area: the real callee-saved registers, xmm6-15 among them
    # for Win64, the result, the mask, and PyErr_Fetch's three pointers.
    guard_at = frame
    if guard is not None:
        frame += 8 * len(guard.gprs) + 16 * guard.xmms + 8 * 5
    pushed = 16 if save_win64_callee else 0
    # rsp is 8 past a 16-byte boundary at entry; after the pushes and the
    # frame it must be on one at the call.
    if (frame + pushed + 8) % 16:
        frame += 8
    entry = frame + pushed  # offset of the return address from rsp in the body
    code = bytearray()
    if save_win64_callee:
        code += push("rdi") + push("rsi")
    code += sub_rsp(frame)
    if save_win64_callee:
        for k in range(10):
            code += store_dqu(6 + k, xmm_save + 16 * k)
    for i, reg in enumerate(_SPILL_INT):
        code += store(reg, spill + 8 * i)
    for n in range(SYSV_XMM):
        code += store_sd(n, spill + 8 * (len(_SPILL_INT) + n))
    if hook is not None:
        for reg, m in zip(("rdi", "rsi"), moves[:2]):
            code += _load_source(m.source, "ptr", reg, None, spill, entry)
        code += mov_imm64("r11", hook) + call_r11()
    # Stack destinations first (through rax), then registers.
    for m in moves:
        if m.dest[0] == "stack":
            # A float bound for the stack travels as its 8-byte image.
            kind = m.kind if m.kind in ("i32", "u32") else "ptr"
            code += _load_source(m.source, kind, "rax", None, spill, entry)
            code += store("rax", m.dest[1])
    for m in moves:
        if m.dest[0] == "int":
            code += _load_source(m.source, m.kind, m.dest[1], None, spill, entry)
        elif m.dest[0] == "xmm":
            code += _load_source(m.source, m.kind, None, m.dest[1], spill, entry)
    if vector_count is not None:
        code += mov_eax_imm(vector_count)
    if guard is not None:
        code += guard.before(guard_at)
    code += mov_imm64("r11", target) + call_r11()
    if guard is not None:
        code += guard.after(guard_at)
    if save_win64_callee:
        for k in range(10):
            code += load_dqu(6 + k, xmm_save + 16 * k)
    code += add_rsp(frame)
    if save_win64_callee:
        code += pop("rsi") + pop("rdi")
    code += RET
    return bytes(code)


def _source_disp(source, spill: int, entry: int) -> int:
    where, what = source
    if where == "int":
        return spill + 8 * _SPILL_INT.index(what)
    if where == "xmm":
        return spill + 8 * (len(_SPILL_INT) + what)
    return entry + what


def _load_source(source, kind, int_dest, xmm_dest, spill, entry) -> bytes:
    disp = _source_disp(source, spill, entry)
    if xmm_dest is not None:
        return load_ss(xmm_dest, disp) if kind == "f32" else load_sd(xmm_dest, disp)
    if kind == "i32":
        return load_sx32(int_dest, disp)
    if kind == "u32":
        return load_zx32(int_dest, disp)
    return load(int_dest, disp)


SYSV_CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")
WIN64_CALLEE_SAVED = ("rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15")


class Guard:
    """What :func:`bridge` needs to guard one call (see its ``guard``).

    - ``gprs``: the callee's callee-saved general registers (never an
      argument register of that ABI), ``xmms``: how many of xmm6.. too
      (10 for Win64, 0 for System V);
    - ``values``: address of ``16 * xmms`` bytes of random xmm values, then
      one random 64-bit value per register of ``gprs`` (kept for the life
      of the stub);
    - ``pending``: address of a word that a misaligned call into the C API
      sets (see :func:`alignment_check`);
    - ``index``: passed to ``report``, which says which function this is;
    - ``report``: a System V function ``report(index, mask, result,
      fetched)`` (bit ``i`` of ``mask`` for ``gprs[i]``, bit ``16 + k`` for
      xmm6+k; ``fetched`` points at the three pointers ``PyErr_Fetch`` took
      from any error the call had set) that returns the message, a C string;
    - ``set_string``, ``system_error``: ``PyErr_SetString`` and
      ``&PyExc_SystemError``;
    - ``error_value``: what the call returns when it fails (``0`` for
      ``NULL``, ``-1`` for an ``int`` slot).
    """

    def __init__(self, gprs, xmms, values, pending, index, report, fetch, set_string, system_error, error_value):
        self.gprs = tuple(gprs)
        self.xmms = xmms
        self.values = values
        self.pending = pending
        self.index = index
        self.report = report
        self.fetch = fetch
        self.set_string = set_string
        self.system_error = system_error
        self.error_value = error_value

    def _slots(self, at):
        gpr_save = at
        xmm_save = gpr_save + 8 * len(self.gprs)
        rest = xmm_save + 16 * self.xmms
        return gpr_save, xmm_save, rest, rest + 8, rest + 16

    def before(self, at: int) -> bytes:
        """Saves the real registers and fills them with the random values
        (after the arguments are in place: none of them is an argument)."""
        gpr_save, xmm_save, _result, _mask, _fetched = self._slots(at)
        code = bytearray()
        for i, reg in enumerate(self.gprs):
            code += store(reg, gpr_save + 8 * i)
        for k in range(self.xmms):
            code += store_dqu(6 + k, xmm_save + 16 * k)
        if self.xmms:
            # r11 is no argument register in either ABI.
            code += mov_imm64("r11", self.values)
            for k in range(self.xmms):
                code += b"\xf3" + (b"\x45" if (6 + k) & 8 else b"\x41") + b"\x0f\x6f"
                code += bytes([0x80 | ((6 + k) & 7) << 3 | 3]) + struct.pack("<i", 16 * k)
        for i, reg in enumerate(self.gprs):
            code += mov_imm64(reg, read_value(self.values, 16 * self.xmms + 8 * i))
        return bytes(code)

    def after(self, at: int) -> bytes:
        """Compares, puts the real registers back, and fails the call when
        anything was wrong; rax and xmm0 are the callee's otherwise."""
        gpr_save, xmm_save, result, mask, fetched = self._slots(at)
        code = bytearray(XOR_R10D)
        for i, reg in enumerate(self.gprs):
            code += mov_imm64("r11", read_value(self.values, 16 * self.xmms + 8 * i))
            code += cmp_r11(reg) + je8(7) + or_r10d(1 << i)
        if self.xmms:
            # rcx and rdx are free after the call (nothing returns in rdx here).
            code += mov_imm64("rcx", self.values)
            for k in range(self.xmms):
                code += pcmpeqb_at_rcx(6 + k, 16 * k) + pmovmskb_edx(6 + k) + CMP_EDX_FFFF + je8(7)
                code += or_r10d(1 << (16 + k))
        for i, reg in enumerate(self.gprs):
            code += load(reg, gpr_save + 8 * i)
        for k in range(self.xmms):
            code += load_dqu(6 + k, xmm_save + 16 * k)
        # mov r11, [pending]; or r11, r10; test r11, r11
        code += mov_imm64("r11", self.pending) + b"\x4d\x8b\x1b" + b"\x4d\x09\xd3" + b"\x4d\x85\xdb"
        fail = bytearray()
        fail += store("rax", result) + store("r10", mask)
        fail += lea("rdi", fetched) + lea("rsi", fetched + 8) + lea("rdx", fetched + 16)
        fail += mov_imm64("r11", self.fetch) + call_r11()
        fail += mov_imm64("rdi", self.index) + load("rsi", mask) + load("rdx", result) + lea("rcx", fetched)
        fail += mov_imm64("r11", self.report) + call_r11()
        fail += b"\x48\x89\xc6"  # mov rsi, rax: the message
        fail += mov_imm64("r11", self.system_error) + mov_rdi_at_r11()
        fail += mov_imm64("r11", self.set_string) + call_r11()
        fail += mov_imm64("rax", self.error_value)
        code += jz32(len(fail)) + fail
        return bytes(code)


def read_value(address: int, offset: int) -> int:
    """The 64-bit word at ``address + offset`` (a guard's random values)."""
    import ctypes

    return struct.unpack("<Q", ctypes.string_at(address + offset, 8))[0]


def alignment_check(target: int, pending: int, index: int) -> bytes:
    """A thunk in front of a C-API function ``target`` that checks ``rsp``
    was 16-byte aligned at the ``call`` (so ``rsp % 16 == 8`` here, past the
    return address), in either ABI: it touches only r10 and r11, which are
    scratch in both and carry no argument.

    Aligned, it jumps to ``target`` (nothing else changes). Misaligned, it
    records ``index + 1`` and the return address in the two words at
    ``pending`` (the first violation only: the guard around the module's
    function reports it), then calls ``target`` on a realigned stack with a
    copy of the 128 bytes above the return address (the Win64 shadow space
    and stack arguments, or System V's stack arguments: at most 16), so the
    C API itself never runs misaligned."""
    copy = 16
    code = bytearray()
    code += b"\x49\x89\xe3"  # mov r11, rsp
    code += b"\x41\x83\xe3\x0f"  # and r11d, 15
    code += b"\x41\x83\xfb\x08"  # cmp r11d, 8
    aligned = mov_imm64("r11", target) + jmp_r11()
    code += b"\x75" + bytes([len(aligned)])  # jne misaligned
    code += aligned
    code += mov_imm64("r10", pending)
    record = bytearray()
    record += b"\x49\xc7\x02" + struct.pack("<i", index + 1)  # mov qword [r10], index+1
    record += b"\x4c\x8b\x1c\x24"  # mov r11, [rsp]
    record += b"\x4d\x89\x5a\x08"  # mov [r10+8], r11
    code += b"\x49\x83\x3a\x00"  # cmp qword [r10], 0
    code += b"\x75" + bytes([len(record)])  # jne already recorded
    code += record
    # Here rsp % 16 == 0: a frame of 8 * copy bytes keeps it so at the call.
    code += sub_rsp(8 * copy)
    for k in range(copy):
        code += load("r11", 8 * copy + 8 + 8 * k) + store("r11", 8 * k)
    code += mov_imm64("r11", target) + call_r11()
    code += add_rsp(8 * copy) + RET
    return bytes(code)
