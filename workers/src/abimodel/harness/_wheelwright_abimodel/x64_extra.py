"""Machine code the Windows model needs beyond :func:`x64.bridge`: a
dispatcher that reads the arguments of a Win64 call before choosing the
bridge for it (variadic calls placed by their format string, function
pointers swapped for stubs), and a System V wrapper that lets Python see a
host call's result before the Windows module does (C ``long`` results
narrowed the LLP64 way, ``l``/``k`` parse units stored in 4 bytes).

Both are fixed templates over the encoders of :mod:`x64` plus the two
forms that module has no use for (``lea r64, [rsp+disp32]`` and
``jmp rax``). Python is only ever entered with no exception set: the
templates save the pending exception with ``PyErr_Fetch`` first and put it
back with ``PyErr_Restore`` after, so a ctypes callback never runs with an
error indicator set (CPython would turn its result into a SystemError).
"""

from __future__ import annotations

from . import x64


def lea(reg: str, disp: int) -> bytes:
    """``lea r64, [rsp+disp]``"""
    r = x64.REG[reg]
    return bytes([0x48 | (4 if r & 8 else 0), 0x8D]) + x64._rsp_mem(r, disp)


JMP_RAX = b"\xff\xe0"


def _call(address: int) -> bytes:
    return x64.mov_imm64("r11", address) + x64.call_r11()


# Win64 home (shadow) space the caller reserved above the return address:
# spilling the register arguments there makes every argument one array.
_HOME = (("rcx", 8), ("rdx", 16), ("r8", 24), ("r9", 32))


def dispatcher(select: int, fetch: int, restore: int) -> bytes:
    """A Win64 callee that hands ``select`` (System V, ``void *(void *args)``)
    the address of its argument image and jumps to the bridge it returns.

    At entry the four register arguments are written to the home space, so
    the image is argument *i* at ``rsp + 8 + 8*i`` (a Win64 variadic float
    is in its integer register too, so the image holds it). rdi, rsi and
    xmm6-15, callee-saved under Win64 but not System V, are kept across
    ``select``; the bridge then starts as if called directly, reading its
    arguments from the image (``("stack", 8 + 8*i)``).
    """
    frame = 200  # xmm6-15 (160), three PyErr_Fetch slots, the bridge's address, alignment
    # rsp = 8 (mod 16) at entry; two pushes keep that; frame = 8 (mod 16).
    assert (frame + 16 + 8) % 16 == 0
    slots = 160
    image = frame + 16 + 8
    code = bytearray()
    for reg, disp in _HOME:
        code += x64.store(reg, disp)
    code += x64.push("rdi") + x64.push("rsi") + x64.sub_rsp(frame)
    for k in range(10):
        code += x64.store_dqu(6 + k, 16 * k)
    code += lea("rdi", slots) + lea("rsi", slots + 8) + lea("rdx", slots + 16) + _call(fetch)
    code += lea("rdi", image) + _call(select)
    code += x64.store("rax", slots + 24)
    code += x64.load("rdi", slots) + x64.load("rsi", slots + 8) + x64.load("rdx", slots + 16) + _call(restore)
    code += x64.load("rax", slots + 24)
    for k in range(10):
        code += x64.load_dqu(6 + k, 16 * k)
    code += x64.add_rsp(frame) + x64.pop("rsi") + x64.pop("rdi")
    code += JMP_RAX
    return bytes(code)


def post_call(target: int, stack_bytes: int, post: int, fetch: int, restore: int) -> bytes:
    """A System V function that calls ``target`` with its own arguments and
    returns what ``post`` (System V, ``int64 post(int64 result, void
    *error_slots, void *args)``) makes of the result.

    ``stack_bytes`` of stack arguments are copied down for ``target``; ``al``
    and every argument register pass through untouched. ``args`` points at
    the six integer argument registers as they came in (rdi first);
    ``error_slots`` at the pending exception as ``PyErr_Fetch`` left it
    (type, value, traceback): ``post`` may store an exception there (new
    references), which ``PyErr_Restore`` then raises.
    """
    sb = (stack_bytes + 15) & ~15
    saved, result, slots = sb, sb + 48, sb + 56
    frame = sb + 88  # = 8 (mod 16): rsp aligned at each call
    code = bytearray(x64.sub_rsp(frame))
    for i, reg in enumerate(x64.SYSV_INT):
        code += x64.store(reg, saved + 8 * i)
    for i in range(sb // 8):
        code += x64.load("r10", frame + 8 + 8 * i) + x64.store("r10", 8 * i)
    code += _call(target)
    code += x64.store("rax", result)
    code += lea("rdi", slots) + lea("rsi", slots + 8) + lea("rdx", slots + 16) + _call(fetch)
    code += x64.load("rdi", result) + lea("rsi", slots) + lea("rdx", saved) + _call(post)
    code += x64.store("rax", result)
    code += x64.load("rdi", slots) + x64.load("rsi", slots + 8) + x64.load("rdx", slots + 16) + _call(restore)
    code += x64.load("rax", result)
    code += x64.add_rsp(frame) + x64.RET
    return bytes(code)


# What a Win64 callee leaves in its home space under the model: the bytes
# "noshadow", as the 64-bit value a module reading them back sees.
HOME_POISON = int.from_bytes(b"noshadow", "little")


def home_space_poison(target: int) -> bytes:
    """A Win64 entry that fills the caller's 32-byte home space (``rsp+8``
    to ``rsp+40``) with :data:`HOME_POISON` and jumps to ``target``.

    The home space belongs to the callee, and code compiled by MSVC spills
    its register arguments there; a System V bridge never touches it, so
    without this a module that calls without reserving the 32 bytes (its
    own locals at ``[rsp]`` across a call) would pass under the model and
    fail on Windows. Written here, such a local reads back as
    ``HOME_POISON`` after every C-API call, on every run. Only r11 (scratch,
    no argument in either ABI) changes."""
    code = bytearray(x64.mov_imm64("r11", HOME_POISON))
    for disp in (8, 16, 24, 32):
        code += x64.store("r11", disp)
    code += x64.mov_imm64("r11", target) + x64.jmp_r11()
    return bytes(code)
