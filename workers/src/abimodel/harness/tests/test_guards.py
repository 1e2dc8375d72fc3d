"""The guard of x64.bridge on its own: tiny functions emitted as bytes,
called through guarded stubs as CPython would call a module's function."""

import ctypes

import pytest

from _wheelwright_abimodel import guards, memory, x64

# mov eax, 7 ; ret -- then variants that break one rule each.
RETURN_7 = b"\xb8\x07\x00\x00\x00\xc3"
CLOBBER_RSI = b"\xbe\x05\x00\x00\x00" + RETURN_7  # mov esi, 5
CLOBBER_XMM7 = b"\x66\x0f\xef\xff" + RETURN_7  # pxor xmm7, xmm7
CLOBBER_R12 = b"\x45\x31\xe4" + RETURN_7  # xor r12d, r12d


def win64_stub(code: bytes, name: str):
    (target,) = memory.map_code([code])
    moves = [x64.Move("ptr", ("int", r), ("int", w)) for r, w in zip(x64.SYSV_INT, x64.WIN64_INT)]
    stub = x64.bridge(target, moves, x64.WIN64_SHADOW, save_win64_callee=False, guard=guards.guard(target, name, guards.WIN64, "int"))
    (address,) = memory.map_code([stub])
    return ctypes.PYFUNCTYPE(ctypes.c_int)(address)


def test_a_function_keeping_every_register_returns_its_value():
    assert win64_stub(RETURN_7, "fine")() == 7
    assert ctypes.PYFUNCTYPE(ctypes.c_int)(guards.sysv_entry(memory.map_code([CLOBBER_RSI])[0], "sysv", "int"))() == 7


@pytest.mark.parametrize(
    "code, register",
    [(CLOBBER_RSI, "rsi"), (CLOBBER_XMM7, "xmm7"), (CLOBBER_R12, "r12")],
)
def test_a_win64_function_changing_a_callee_saved_register_raises_naming_it(code, register):
    with pytest.raises(SystemError) as raised:
        win64_stub(code, "broken")()
    assert str(raised.value) == (
        "wheelwright ABI guard: broken returned with %s changed: it is callee-saved under the Win64 ABI, "
        "so a function must restore it before it returns" % register
    )
