"""Tests of ``_wheelwright_abimodel.win64_capi``: the Win64 C-API table, LLP64, formats, placement.

Pure Python; ``workers/tests/win64_capi.rs`` runs them under ``cargo test``
and passes the engine's own ``python3.def`` in ``WHEELWRIGHT_PYTHON3_DEF``.
"""

import ctypes
import glob
import os
import re
import sys
import sysconfig
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _wheelwright_abimodel import win64_capi as w  # noqa: E402
from _wheelwright_abimodel.win64_capi import Location as L  # noqa: E402


# --- the table against python3.def and the interpreter's headers -------------

def python3_def() -> Path:
    given = os.environ.get("WHEELWRIGHT_PYTHON3_DEF")
    if given:
        return Path(given)
    # Run by hand: python3-dll-a's copy in cargo's registry, the file the engine reads.
    found = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/python3-dll-a-0.2.15/src/python3.def")))
    assert found, "set WHEELWRIGHT_PYTHON3_DEF to the engine's python3.def"
    return Path(found[-1])


def def_symbols():
    functions, data = set(), set()
    text = python3_def().read_text()
    for line in text.split("EXPORTS", 1)[1].splitlines():
        words = line.split()
        if not words or words[0].startswith(";"):
            continue
        (data if "DATA" in words else functions).add(words[0])
    return functions, data


def test_every_stable_abi_function_has_a_signature_and_every_data_symbol_is_data():
    functions, data = def_symbols()
    assert len(functions) > 700 and len(data) > 100
    assert w.function_names() == functions
    assert w.data_names() == data
    for name in functions:
        assert w.kind_of(name) == "function"
        assert w.signature(name) is not None
    for name in data:
        assert w.kind_of(name) == "data"
        assert w.signature(name) is None


_TYPE_WORDS = {"int", "long", "short", "char", "double", "float", "unsigned", "signed", "void",
               "const", "struct", "volatile"}


def _header_kind(arg: str):
    """Kind and C-long-ness of one parameter as the header writes it (with or without a name)."""
    arg = " ".join(arg.split())
    if "(" in arg or "*" in arg or "[" in arg:
        return ("va_list" if arg.startswith("va_list") else "ptr"), False
    words = arg.split()
    if len(words) > 1 and words[-1] not in _TYPE_WORDS and any(x not in ("const", "struct") for x in words[:-1]):
        words = words[:-1]  # a parameter name
    ctype = " ".join(words)
    return w.ctype_kind(ctype), w.is_c_long(ctype)


def header_prototypes():
    include = Path(sysconfig.get_paths()["include"])
    src = "\n".join(p.read_text(errors="replace") for p in sorted(include.rglob("*.h")))
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    found = {}
    pattern = r"PyAPI_FUNC\s*\(([^;{]*?)\)\s*(?:_Py_NO_RETURN\s*)?(\w+)\s*\(([^;{]*?)\)\s*(?:Py_GCC_ATTRIBUTE\(.*?\)\s*)?;"
    for m in re.finditer(pattern, src, re.S):
        found.setdefault(m.group(2), (m.group(1), m.group(3)))
    return found


def _split(text):
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [a.strip() for a in out + [cur] if a.strip()]


def test_signatures_agree_with_the_running_interpreters_headers():
    protos = header_prototypes()
    checked = 0
    for name in w.function_names():
        if name not in protos:
            continue  # added after this interpreter's version
        ret, args = protos[name]
        sig = w.signature(name)
        params = [a for a in _split(args) if a != "void"]
        variadic = bool(params) and params[-1] == "..."
        params = params[:-1] if variadic else params
        kinds = [_header_kind(a) for a in params]
        assert variadic == sig.variadic, name
        assert tuple(k for k, _ in kinds) == sig.args, (name, args)
        assert tuple(i for i, (_, long_) in enumerate(kinds) if long_) == sig.long_args, (name, args)
        ret_kind, ret_long = _header_kind(ret)
        assert (ret_kind, ret_long) == (sig.ret, sig.returns_long), (name, ret)
        checked += 1
    assert checked > 700


@pytest.mark.parametrize("name, ret, args, long_args, returns_long", [
    ("PyLong_FromLong", "ptr", ("i32",), (0,), False),
    ("PyLong_FromUnsignedLong", "ptr", ("u32",), (0,), False),
    ("PyLong_FromLongLong", "ptr", ("i64",), (), False),
    ("PyLong_AsLong", "i32", ("ptr",), (), True),
    ("PyLong_AsUnsignedLong", "u32", ("ptr",), (), True),
    ("PyLong_AsLongAndOverflow", "i32", ("ptr", "ptr"), (), True),
    ("PyLong_AsSsize_t", "i64", ("ptr",), (), False),
    ("PyBool_FromLong", "ptr", ("i32",), (0,), False),
    ("PyModule_AddIntConstant", "i32", ("ptr", "ptr", "i32"), (2,), False),
    ("PyThreadState_SetAsyncExc", "i32", ("u32", "ptr"), (0,), False),
    ("PyFloat_FromDouble", "ptr", ("f64",), (), False),
    ("PyFloat_AsDouble", "f64", ("ptr",), (), False),
    ("PyComplex_FromDoubles", "ptr", ("f64", "f64"), (), False),
    ("PyOS_double_to_string", "ptr", ("f64", "i32", "i32", "i32", "ptr"), (), False),
    ("PyUnicode_FromOrdinal", "ptr", ("i32",), (), False),
    ("PyUnicode_FromFormatV", "ptr", ("ptr", "va_list"), (), False),
    ("PyModule_Create2", "ptr", ("ptr", "i32"), (), False),
    ("PyErr_SetString", "void", ("ptr", "ptr"), (), False),
    ("Py_GetConstant", "ptr", ("u32",), (), False),
    ("PyType_GetFlags", "u32", ("ptr",), (), True),
])
def test_signature_kinds_mark_every_c_long(name, ret, args, long_args, returns_long):
    sig = w.signature(name)
    assert (sig.ret, sig.args, sig.long_args, sig.returns_long) == (ret, args, long_args, returns_long)


def test_function_pointer_arguments_are_marked_as_callbacks():
    assert w.signature("PyCapsule_New").callback_args == (2,)
    assert w.signature("PyCapsule_SetDestructor").callback_args == (1,)
    assert w.signature("Py_AtExit").callback_args == (0,)
    assert w.signature("PyOS_setsig").callback_args == (1,)
    assert w.signature("PyLong_FromLong").callback_args == ()


def test_variadic_functions_name_their_family_and_the_argument_that_drives_it():
    assert {n for n in w.function_names() if w.signature(n).variadic} == set(w.VARIADIC)
    for name, (family, arg) in w.VARIADIC.items():
        sig = w.signature(name)
        assert sig.family == family
        if family in ("count",):
            assert sig.args[arg] == "i64", name
        elif family != "null_terminated":
            assert sig.c_args[arg] == "const char *", name
    assert (w.signature("PyArg_ParseTupleAndKeywords").family, w.signature("PyArg_ParseTupleAndKeywords").fmt_arg) == ("parse", 2)
    assert w.signature("PyObject_CallMethod").fmt_arg == 2


def test_unknown_c_types_and_names_are_refused():
    with pytest.raises(ValueError, match="unknown C type 'Py_complex'"):
        w.ctype_kind("Py_complex")
    assert w.kind_of("PyNotAFunction") is None
    assert w.signature("PyNotAFunction") is None


def test_hash_lengths_are_int_for_the_plain_names_before_3_13():
    assert w.hash_is_ssize_t("Py_BuildValue", (3, 11)) is False
    assert w.hash_is_ssize_t("_Py_BuildValue_SizeT", (3, 11)) is True
    assert w.hash_is_ssize_t("Py_BuildValue", (3, 13)) is True


# --- LLP64 ------------------------------------------------------------------

GARBAGE = 0xDEADBEEF00000000


@pytest.mark.parametrize("kind, raw, expected", [
    ("i32", GARBAGE | 0x7FFFFFFF, 0x7FFFFFFF),
    ("i32", GARBAGE | 0x80000000, 0xFFFFFFFF80000000),
    ("i32", GARBAGE | 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF),
    ("i32", 0x0000000100000000, 0),
    ("u32", GARBAGE | 0xFFFFFFFF, 0xFFFFFFFF),
    ("u32", GARBAGE | 0x80000000, 0x80000000),
    ("i64", GARBAGE | 1, GARBAGE | 1),
    ("ptr", 0x7F0012345678, 0x7F0012345678),
    ("i64", -1, 0xFFFFFFFFFFFFFFFF),
])
def test_to_sysv_arg_extends_the_low_half_of_32_bit_kinds(kind, raw, expected):
    assert w.to_sysv_arg(kind, raw) == expected


def test_to_sysv_arg_refuses_float_kinds():
    with pytest.raises(ValueError, match="'f64' is not an integer kind"):
        w.to_sysv_arg("f64", 0)


@pytest.mark.parametrize("value, expected", [
    (2**31 - 1, (2**31 - 1, False)),
    (2**31, (-1, True)),
    (-2**31, (-2**31, False)),
    (-2**31 - 1, (-1, True)),
    (2**32 - 1, (-1, True)),
    (2**32, (-1, True)),
    (2**40, (-1, True)),
    (-1, (-1, False)),
])
def test_from_sysv_long_overflows_outside_32_bits(value, expected):
    assert w.from_sysv_long(value) == expected


@pytest.mark.parametrize("value, expected", [
    (2**31 - 1, (2**31 - 1, False)),
    (2**31, (2**31, False)),
    (2**32 - 1, (2**32 - 1, False)),
    (2**32, (2**32 - 1, True)),
    (2**64 - 1, (2**32 - 1, True)),
])
def test_from_sysv_unsigned_long_overflows_past_32_bits(value, expected):
    assert w.from_sysv_unsigned_long(value) == expected


def test_overflow_messages_are_cpythons_own():
    # The host raises the same messages for values past 64 bits; Windows past 32.
    api = ctypes.pythonapi
    api.PyLong_AsLong.argtypes = [ctypes.py_object]
    api.PyLong_AsLong.restype = ctypes.c_long
    api.PyLong_AsUnsignedLong.argtypes = [ctypes.py_object]
    api.PyLong_AsUnsignedLong.restype = ctypes.c_ulong
    with pytest.raises(OverflowError) as e:
        api.PyLong_AsLong(2**70)
    assert str(e.value) == w.LONG_OVERFLOW
    with pytest.raises(OverflowError) as e:
        api.PyLong_AsUnsignedLong(2**70)
    assert str(e.value) == w.ULONG_OVERFLOW


def test_every_function_returning_a_c_long_has_a_windows_rule():
    returning = {n for n in w.function_names() if w.signature(n).returns_long}
    assert returning == set(w.LONG_RETURN_RULES)


@pytest.mark.parametrize("name, value, error_set, expected", [
    ("PyLong_AsLong", 2**40, False, (-1, ("OverflowError", w.LONG_OVERFLOW), None)),
    ("PyLong_AsLong", 2**31 - 1, False, (2**31 - 1, None, None)),
    ("PyLong_AsLong", 2**31, False, (-1, ("OverflowError", w.LONG_OVERFLOW), None)),
    ("PyLong_AsLong", -2**31, False, (-2**31, None, None)),
    ("PyLong_AsLong", -2**31 - 1, False, (-1, ("OverflowError", w.LONG_OVERFLOW), None)),
    ("PyLong_AsLong", -1, True, (-1, None, None)),  # the host's TypeError stays
    ("PyLong_AsUnsignedLong", 2**32 - 1, False, (2**32 - 1, None, None)),
    ("PyLong_AsUnsignedLong", 2**32, False, (2**32 - 1, ("OverflowError", w.ULONG_OVERFLOW), None)),
    ("PyLong_AsUnsignedLong", 2**64 - 1, True, (2**32 - 1, None, None)),
    ("PyLong_AsLongAndOverflow", 2**40, False, (-1, None, 1)),
    ("PyLong_AsLongAndOverflow", -2**31 - 1, False, (-1, None, -1)),
    ("PyLong_AsLongAndOverflow", -2**31, False, (-2**31, None, None)),
    ("PyLong_AsUnsignedLongMask", 2**40 + 5, False, (5, None, None)),
    ("PyLong_AsUnsignedLongMask", 2**64 - 1, True, (2**32 - 1, None, None)),
    ("PyOS_strtol", 3_000_000_000, False, (2**31 - 1, None, None)),
    ("PyOS_strtol", -3_000_000_000, False, (2**31 - 1, None, None)),
    ("PyOS_strtol", -2**31, False, (-2**31, None, None)),
    ("PyOS_strtoul", 2**32, False, (2**32 - 1, None, None)),
    ("PyOS_strtoul", 2**32 - 1, False, (2**32 - 1, None, None)),
    ("PyThread_get_thread_ident", 0x7F1234567890, False, (0x34567890, None, None)),
    ("PyImport_GetMagicNumber", 0x0A0D0DA7, False, (0x0A0D0DA7, None, None)),
])
def test_windows_return_matches_windows_cpython(name, value, error_set, expected):
    assert tuple(w.windows_return(name, value, error_set)) == expected


def test_windows_return_refuses_functions_without_a_long_result():
    with pytest.raises(KeyError, match="PyLong_AsLongLong does not return a C long"):
        w.windows_return("PyLong_AsLongLong", 0, False)


@pytest.mark.parametrize("unit, value, expected", [
    ("l", 2**31 - 1, (2**31 - 1, None)),
    ("l", 2**31, (-1, ("OverflowError", w.LONG_OVERFLOW))),
    ("l", -2**31, (-2**31, None)),
    ("l", -2**31 - 1, (-1, ("OverflowError", w.LONG_OVERFLOW))),
    ("k", 2**32 - 1, (2**32 - 1, None)),
    ("k", 2**32, (0, None)),
    ("k", -1, (2**32 - 1, None)),
])
def test_parse_l_and_k_store_what_windows_stores(unit, value, expected):
    assert w.windows_parse_long(unit, value) == expected


# --- variadic arguments -----------------------------------------------------

@pytest.mark.parametrize("fmt, kinds, c_types", [
    (b"", [], []),
    (b"O", ["ptr"], ["PyObject **"]),
    (b"ll", ["ptr", "ptr"], ["long *", "long *"]),
    (b"kKLn", ["ptr"] * 4, ["unsigned long *", "unsigned long long *", "long long *", "Py_ssize_t *"]),
    (b"s#|z*:f", ["ptr"] * 3, ["const char **", "Py_ssize_t *", "Py_buffer *"]),
    (b"y*w*", ["ptr", "ptr"], ["Py_buffer *", "Py_buffer *"]),
    (b"O!O&", ["ptr"] * 4, ["PyTypeObject *", "PyObject **", "int (*)(PyObject *, void *)", "void *"]),
    (b"es", ["ptr", "ptr"], ["const char *", "char **"]),
    (b"et#", ["ptr"] * 3, ["const char *", "char **", "Py_ssize_t *"]),
    (b"(ii)d|$p", ["ptr"] * 4, ["int *", "int *", "double *", "int *"]),
    (b"i;message with O and s", ["ptr"], ["int *"]),
    (b"bBhHIcCfDSYU", ["ptr"] * 12, ["unsigned char *", "unsigned char *", "short *", "unsigned short *",
                                      "unsigned int *", "char *", "int *", "float *", "Py_complex *",
                                      "PyBytesObject **", "PyByteArrayObject **", "PyObject **"]),
])
def test_parse_units_are_pointers_with_their_targets(fmt, kinds, c_types):
    units = w.varargs_units("parse", fmt)
    assert [u.kind for u in units] == kinds
    assert [u.c_type for u in units] == c_types


def test_parse_hash_length_is_int_pointer_without_ssize_t():
    assert [u.c_type for u in w.varargs_units("parse", b"s#", ssize_t=False)] == ["const char **", "int *"]


@pytest.mark.parametrize("fmt, unit", [
    (b"iQ", "Q"), (b"w", "w"), (b"ex", "ex"), (b"i)", ")"), (b"(i", "("), (b"i||i", "|"), (b"i i", " "),
])
def test_parse_refuses_invalid_units_by_name(fmt, unit):
    with pytest.raises(w.FormatError) as e:
        w.varargs_units("parse", fmt)
    assert e.value.unit == unit


@pytest.mark.parametrize("fmt, kinds, ssize_t", [
    (b"", [], True),
    (b"i", ["i32"], True),
    (b"l", ["i32"], True),
    (b"k", ["u32"], True),
    (b"I", ["u32"], True),
    (b"LKn", ["i64", "i64", "i64"], True),
    (b"bBhHcC", ["i32"] * 6, True),
    (b"df", ["f64", "f64"], True),
    (b"(iO)[s, N]{s:O}", ["i32", "ptr", "ptr", "ptr", "ptr", "ptr"], True),
    (b"s#y#", ["ptr", "i64", "ptr", "i64"], True),
    (b"s#", ["ptr", "i32"], False),
    (b"O&D", ["ptr", "ptr", "ptr"], True),
    (b"u#U z", ["ptr", "i64", "ptr", "ptr"], True),
])
def test_build_units_are_values_promoted_like_c_varargs(fmt, kinds, ssize_t):
    assert w.varargs_kinds("build", fmt, ssize_t=ssize_t) == kinds


def test_build_marks_c_long_values():
    assert [u.c_type for u in w.varargs_units("build", b"lki")] == ["long", "unsigned long", "int"]


@pytest.mark.parametrize("fmt, unit", [(b"(i]", "]"), (b"[i", "["), (b"iq", "q"), (b"p", "p")])
def test_build_refuses_invalid_units_by_name(fmt, unit):
    with pytest.raises(w.FormatError) as e:
        w.varargs_units("build", fmt)
    assert e.value.unit == unit


@pytest.mark.parametrize("fmt, kinds, c_types", [
    (b"no conversions, 100%%", [], []),
    (b"%d %i %u %x %X %o", ["i32", "i32", "u32", "u32", "u32", "u32"],
     ["int", "int", "unsigned int", "unsigned int", "unsigned int", "unsigned int"]),
    (b"%ld %li %lu %lx", ["i32", "i32", "u32", "u32"], ["long", "long", "unsigned long", "unsigned long"]),
    (b"%lld %llu %zd %zu %jd %td", ["i64"] * 6,
     ["long long", "unsigned long long", "Py_ssize_t", "size_t", "intmax_t", "ptrdiff_t"]),
    (b"%c %p %s %ls", ["i32", "ptr", "ptr", "ptr"], ["int", "void *", "const char *", "const wchar_t *"]),
    (b"%A %U %S %R %T %#T %N", ["ptr"] * 7, ["PyObject *"] * 6 + ["PyTypeObject *"]),
    (b"%V", ["ptr", "ptr"], ["PyObject *", "const char *"]),
    (b"%-10.5s|%05d", ["ptr", "i32"], ["const char *", "int"]),
    (b"%*.*s %*d", ["i32", "i32", "ptr", "i32", "i32"], ["int", "int", "const char *", "int", "int"]),
])
def test_format_units_follow_pyunicode_fromformat(fmt, kinds, c_types):
    units = w.varargs_units("format", fmt)
    assert [u.kind for u in units] == kinds
    assert [u.c_type for u in units] == c_types


@pytest.mark.parametrize("family, fmt, unit", [
    ("format", b"%f", "%f"),
    ("format", b"%hd", "%h"),
    ("format", b"value %", "%"),
    ("format", b"%lS", "%lS"),
    ("bytes_format", b"%R", "%R"),
    ("bytes_format", b"%*d", "%*"),
    ("bytes_format", b"%lld", "%ll"),  # 'l' then 'l', which is no conversion
    ("printf", b"%Lf", "%Lf"),
    ("printf", b"%R", "%R"),
])
def test_format_refuses_units_the_function_does_not_have(family, fmt, unit):
    with pytest.raises(w.FormatError) as e:
        w.varargs_units(family, fmt)
    assert e.value.unit == unit
    assert repr(unit) in str(e.value)


def test_bytes_format_reads_its_own_units():
    assert w.varargs_kinds("bytes_format", b"%c%d%u%ld%lu%zd%zu%i%x%s%p%%") == [
        "i32", "i32", "u32", "i32", "u32", "i64", "i64", "i32", "u32", "ptr", "ptr"]


def test_printf_reads_floats_and_microsoft_lengths():
    assert w.varargs_kinds("printf", b"%5.2f %e %g %a %lf %I64d %I32u %Iu %hhd %hu %ld %lu %n %+ d") == [
        "f64", "f64", "f64", "f64", "f64", "i64", "u32", "i64", "i32", "u32", "i32", "u32", "ptr", "i32"]


def test_families_without_a_format_are_refused():
    with pytest.raises(ValueError, match="family 'count' has no format string"):
        w.varargs_units("count", b"")


# --- placement --------------------------------------------------------------

SYSV_INT = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"]


@pytest.mark.parametrize("n", range(0, 9))
def test_sysv_places_0_to_8_integer_arguments(n):
    p = w.sysv_placement(["i64"] * n, variadic=False)
    expected = [L("gpr", r) for r in SYSV_INT[:n]] + [L("stack", offset=8 * i) for i in range(max(0, n - 6))]
    assert p.locations == expected
    assert p.stack_bytes == {7: 16, 8: 16}.get(n, 0)
    assert p.al is None


@pytest.mark.parametrize("n", range(0, 9))
def test_win64_reads_0_to_8_integer_arguments(n):
    expected = [L("gpr", r) for r in ["rcx", "rdx", "r8", "r9"][:n]] + \
        [L("stack", offset=40 + 8 * i) for i in range(max(0, n - 4))]
    assert w.win64_sources(["ptr"] * n) == expected


def test_mixed_ints_and_floats_count_apart_on_sysv_and_by_position_on_win64():
    kinds = ["ptr", "f64", "i32", "f64", "f32", "i64"]
    assert w.sysv_placement(kinds, False).locations == [
        L("gpr", "rdi"), L("xmm", "xmm0"), L("gpr", "rsi"), L("xmm", "xmm1"), L("xmm", "xmm2"), L("gpr", "rdx")]
    assert w.win64_sources(kinds) == [
        L("gpr", "rcx"), L("xmm", "xmm1"), L("gpr", "r8"), L("xmm", "xmm3"), L("stack", offset=40),
        L("stack", offset=48)]


def test_sysv_spills_the_ninth_float_and_the_seventh_integer_to_the_stack():
    kinds = ["f64"] * 9 + ["i64"] * 7
    p = w.sysv_placement(kinds, True)
    assert p.locations[:8] == [L("xmm", f"xmm{i}") for i in range(8)]
    assert p.locations[8] == L("stack", offset=0)
    assert p.locations[9:15] == [L("gpr", r) for r in SYSV_INT]
    assert p.locations[15] == L("stack", offset=8)
    assert (p.stack_bytes, p.al) == (16, 8)


def test_variadic_sysv_sets_al_to_the_vector_registers_used():
    # PyErr_Format(exc, "%d %f", 1, 2.0) never happens (no %f), but Py_BuildValue("(idd)", ...) does.
    assert w.sysv_placement(["ptr", "i32", "f64", "f64"], True).al == 2
    assert w.sysv_placement(["ptr", "ptr"], True).al == 0


def test_win64_variadic_floats_are_in_the_integer_register_too():
    # Py_BuildValue("dd", 1.0, 2.0): the format is fixed, the doubles variadic.
    assert w.win64_sources(["ptr", "f64", "f64", "i32", "f64"], fixed=1) == [
        L("gpr", "rcx"), L("gpr", "rdx", copy="xmm1"), L("gpr", "r8", copy="xmm2"), L("gpr", "r9"),
        L("stack", offset=40)]
    # A named double of a variadic function stays in its xmm.
    assert w.win64_sources(["f64", "ptr"], fixed=1) == [L("xmm", "xmm0"), L("gpr", "rdx")]


def test_a_real_call_is_placed_from_its_signature_and_format():
    sig = w.signature("Py_BuildValue")
    kinds = list(sig.args) + w.varargs_kinds("build", b"(lkd)", ssize_t=True)
    assert kinds == ["ptr", "i32", "u32", "f64"]
    assert w.win64_sources(kinds, fixed=len(sig.args)) == [
        L("gpr", "rcx"), L("gpr", "rdx"), L("gpr", "r8"), L("gpr", "r9", copy="xmm3")]
    assert w.sysv_placement(kinds, True) == w.Placement(
        [L("gpr", "rdi"), L("gpr", "rsi"), L("gpr", "rdx"), L("xmm", "xmm0")], 0, 1)


def test_results_are_in_rax_or_xmm0():
    assert w.return_location("i32") == L("gpr", "rax")
    assert w.return_location("f64") == L("xmm", "xmm0")
    assert w.return_location("void") is None


def test_placement_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="not an argument kind: 'long'"):
        w.sysv_placement(["long"], False)
