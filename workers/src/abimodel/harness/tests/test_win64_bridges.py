"""The Win64 -> System V bridges of win64.py run for real: an independent
Win64 caller (win64_caller.asm, assembled by nasm here) calls a generated
bridge whose System V target is a ctypes callback recording what arrived.

Run by workers/tests/win64_model.rs with WHEELWRIGHT_NASM and
WHEELWRIGHT_LD_LLD set to the engine's tools.
"""

import ctypes
import os
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _wheelwright_abimodel import memory, win64  # noqa: E402

MARKERS = (0x1111111111111111, 0x2222222222222222, 0x3333333333333333, 0x4444444444444444)


@pytest.fixture(scope="module")
def caller(tmp_path_factory):
    out = tmp_path_factory.mktemp("caller")
    obj, lib = out / "caller.o", out / "caller.so"
    subprocess.run([os.environ["WHEELWRIGHT_NASM"], "-f", "elf64", "-o", str(obj), os.path.join(HERE, "win64_caller.asm")], check=True)
    subprocess.run([os.environ["WHEELWRIGHT_LD_LLD"], "-shared", "-z", "noexecstack", "-o", str(lib), str(obj)], check=True)
    # PyDLL: the GIL stays held, as when a module calls the C API.
    function = ctypes.PyDLL(str(lib)).win64_call
    function.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    function.restype = None

    def call(address, slots):
        images = (ctypes.c_uint64 * 8)(*[s & (2**64 - 1) for s in slots + [0] * (8 - len(slots))])
        result = (ctypes.c_uint64 * 6)()
        function(address, images, result)
        assert tuple(result[2:6]) == MARKERS, "rdi, rsi, xmm6, xmm15 not kept: %r" % [hex(v) for v in result[2:6]]
        return result[0], result[1]

    return call


CTYPE = {"i64": ctypes.c_int64, "ptr": ctypes.c_uint64, "i32": ctypes.c_int64, "u32": ctypes.c_uint64,
         "f64": ctypes.c_double, "f32": ctypes.c_float}


def recording_target(kinds, restype=ctypes.c_int64, result=0x5EED):
    seen = []

    def target(*args):
        seen.append(args)
        return result

    callback = ctypes.CFUNCTYPE(restype, *[CTYPE[k] for k in kinds])(target)
    return callback, ctypes.cast(callback, ctypes.c_void_p).value, seen


def f64_bits(value):
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def f32_bits(value, garbage=0xABCD000000000000):
    return struct.unpack("<I", struct.pack("<f", value))[0] | garbage


@pytest.mark.parametrize("count", range(9))
def test_integer_arguments_0_to_8_arrive_in_order(caller, count):
    kinds = ["i64"] * count
    callback, address, seen = recording_target(kinds)
    bridge = win64._map(win64.bridge_for(address, kinds))
    values = [(0x0101010101010101 * (i + 1)) ^ (1 << 63 if i % 2 else 0) for i in range(count)]
    rax, _ = caller(bridge, values)
    assert rax == 0x5EED
    assert seen == [tuple(v - 2**64 if v >> 63 else v for v in values)]


def test_mixed_floats_go_by_position_and_long_is_widened_the_windows_way(caller):
    kinds = ["f64", "i32", "f64", "u32", "f64", "i64", "f32", "f64"]
    callback, address, seen = recording_target(kinds, ctypes.c_double, 2.5)
    bridge = win64._map(win64.bridge_for(address, kinds))
    slots = [f64_bits(1.5), 0xDEADBEEF_FFFFFFF9, f64_bits(-3.25), 0xDEADBEEF_80000001,
             f64_bits(1e300), -42, f32_bits(0.75), f64_bits(-0.0)]
    _, xmm0 = caller(bridge, slots)
    assert struct.unpack("<d", struct.pack("<Q", xmm0))[0] == 2.5
    assert seen == [(1.5, -7, -3.25, 0x80000001, 1e300, -42, 0.75, -0.0)]


def test_build_value_varargs_are_placed_by_the_format_read_at_the_call(caller):
    fmt = ctypes.create_string_buffer(b"(dldldld)")
    kinds = ["ptr", "f64", "i32", "f64", "i32", "f64", "i32", "f64"]
    callback, address, seen = recording_target(kinds)
    dispatcher = win64.thunk("Py_BuildValue", address)
    fmt_address = ctypes.addressof(fmt)
    slots = [fmt_address, f64_bits(0.5), 0xFFFFFFFF_00000007, f64_bits(-2.0), 0x12345678_FFFFFFFF,
             f64_bits(3.0), 2**31 - 1, f64_bits(4.5)]
    rax, _ = caller(dispatcher, slots)
    assert rax == 0x5EED
    assert seen == [(fmt_address, 0.5, 7, -2.0, -1, 3.0, 2**31 - 1, 4.5)]
    # The same format again takes the cached bridge; a new one gets its own.
    caller(dispatcher, slots)
    other = ctypes.create_string_buffer(b"lll")
    caller(dispatcher, [ctypes.addressof(other), 0xFFFFFFFF_FFFFFFFE, 5, 0x1_00000000])
    assert seen[1] == seen[0]
    # The target reads System V integer registers where it declared i32s.
    assert (seen[2][0], seen[2][2], seen[2][4], seen[2][6]) == (ctypes.addressof(other), -2, 5, 0)


def test_a_function_pointer_argument_is_handed_over_as_a_stub(caller):
    kinds = ["ptr", "ptr", "ptr"]
    callback, address, seen = recording_target(kinds)
    dispatcher = win64.thunk("PyCapsule_New", address)
    module_function = memory.map_code([b"\xc3"])[0]
    caller(dispatcher, [0x1000, 0x2000, module_function])
    ((pointer, name, destructor),) = seen
    assert (pointer, name) == (0x1000, 0x2000)
    assert destructor != module_function and win64._stub_origin[destructor] == module_function
