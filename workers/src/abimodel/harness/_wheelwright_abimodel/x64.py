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


def bridge(target: int, moves: list, out_stack: int, *, save_win64_callee: bool, vector_count=None, hook=None) -> bytes:
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

    Return values need no bridge: both conventions return in rax / xmm0.
    """
    out_stack = (out_stack + 15) & ~15
    xmm_save = out_stack
    spill = xmm_save + (160 if save_win64_callee else 0)
    frame = spill + 8 * _SPILL_SLOTS
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
    code += mov_imm64("r11", target) + call_r11()
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
