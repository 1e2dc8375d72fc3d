"""The Windows x64 C API as data and pure functions, for the Win64 model.

A Windows extension module calls the C API with the Microsoft x64 convention
and the LLP64 data model; the interpreter on this host expects System V and
LP64. This module says, for every function a stable-ABI (``abi3``) module can
import from ``python3.dll``, what each argument and the result are (as
*kinds*: ``ptr``, ``i64``, ``i32``, ``u32``, ``f64``, ``f32``; ``va_list`` for
the ``...V`` functions; ``void`` for no result), where each argument lives on
both sides of a call, what the variadic arguments of a format string are, and
how a C ``long`` result is turned into what Windows CPython returns. The thunk
generator (``win64.py``) turns these answers into instructions; nothing here
touches memory, so all of it can be tested without ctypes.

Sources: the prototypes are CPython's headers (3.11 on this host, and the
newer headers for what 3.12–3.15 added to the stable ABI); the list of names
is python3-dll-a's ``python3.def``, the same file the engine makes Windows
import libraries from; the format units are
https://docs.python.org/3/c-api/arg.html and the ``PyUnicode_FromFormat``
table of https://docs.python.org/3/c-api/unicode.html; the conventions are
Microsoft's "x64 calling convention" page and the System V AMD64 psABI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

#: The kinds an argument or a result can have. ``i32`` is a C ``int`` and also a
#: C ``long`` (32 bits on Windows); ``u32`` is ``unsigned int`` and ``unsigned
#: long``; ``i64`` is every 64-bit integer (``Py_ssize_t``, ``size_t``, ``long
#: long``, ``unsigned long long``: the registers hold the same bits whatever
#: the sign). ``va_list`` is pointer-sized but not the same object on both
#: sides (Win64: a ``char *`` into the stack image; System V: a pointer to a
#: register save structure), so the model must rebuild it, never pass it on.
KINDS = ("ptr", "i64", "i32", "u32", "f64", "f32", "va_list")

#: Kinds passed in vector registers.
FLOAT_KINDS = frozenset({"f64", "f32"})

#: Variadic families: how the kinds of the variable arguments are known.
#: ``parse``: a PyArg_Parse* format (every argument is a pointer);
#: ``build``: a Py_BuildValue format (values); ``format``: PyUnicode_FromFormat's
#: printf-like format; ``bytes_format``: PyBytes_FromFormat's smaller one;
#: ``printf``: the C library's printf (PyOS_snprintf, PySys_WriteStdout);
#: ``count``: a count argument says how many ``PyObject *`` follow;
#: ``null_terminated``: ``PyObject *`` arguments up to a NULL.
FAMILIES = ("parse", "build", "format", "bytes_format", "printf", "count", "null_terminated")


class FormatError(ValueError):
    """A format string the model cannot place arguments for.

    Raised instead of guessing: a wrong guess would put every later argument
    in the wrong register. ``unit`` is the offending unit as written and
    ``position`` its byte offset in the format.
    """

    def __init__(self, family: str, fmt: bytes, position: int, unit: str, why: str) -> None:
        self.family = family
        self.fmt = fmt
        self.position = position
        self.unit = unit
        super().__init__(f"{family} format {fmt!r}: unit {unit!r} at offset {position}: {why}")


# ---------------------------------------------------------------------------
# C types and kinds
# ---------------------------------------------------------------------------

#: Named scalar types of the prototypes, by kind. Enums are ``int`` on both
#: ABIs. A type that is in none of these sets is an error (``ctype_kind``),
#: so a new prototype with an unknown typedef cannot be placed by accident.
_SCALARS = {
    "i32": {"int", "signed int", "char", "signed char", "short", "int32_t", "long",
            "PyGILState_STATE", "PyLockStatus", "PySendResult"},
    "u32": {"unsigned int", "unsigned char", "unsigned short", "uint32_t", "Py_UCS4",
            "unsigned long"},
    "i64": {"long long", "unsigned long long", "Py_ssize_t", "size_t", "Py_hash_t",
            "Py_uhash_t", "int64_t", "uint64_t", "PY_TIMEOUT_T", "intmax_t", "uintmax_t", "ptrdiff_t"},
    "f64": {"double"},
    "f32": {"float"},
}

#: Typedefs that are pointers. The ones in ``CALLBACK_TYPEDEFS`` are function
#: pointers the module hands to CPython: CPython will call them with System V
#: registers, so the model has to give it a System V → Win64 stub instead.
_POINTER_TYPEDEFS = {"PyThread_type_lock"}
CALLBACK_TYPEDEFS = frozenset({"PyCFunction", "PyCapsule_Destructor", "PyOS_sighandler_t"})


def _strip_const(ctype: str) -> str:
    words = [w for w in ctype.split() if w not in ("const", "volatile")]
    return " ".join(words)


def ctype_kind(ctype: str) -> str:
    """The kind of one C type as written in the prototype table.

    ``void`` (a result only) gives ``"void"``. Raises ``ValueError`` for a type
    the model does not know rather than guessing its size.
    """
    text = ctype.strip()
    if text == "...":
        raise ValueError("'...' is not an argument type: it marks a variadic function")
    if text == "va_list":
        return "va_list"
    if "*" in text or "(" in text:
        return "ptr"
    base = _strip_const(text)
    if base == "void":
        return "void"
    if base in _POINTER_TYPEDEFS or base in CALLBACK_TYPEDEFS:
        return "ptr"
    for kind, names in _SCALARS.items():
        if base in names:
            return kind
    raise ValueError(f"unknown C type {ctype!r}: add it to the model with its Win64 size")


def is_c_long(ctype: str) -> bool:
    """Whether ``ctype`` is C ``long`` or ``unsigned long`` (32 bits under LLP64)."""
    return _strip_const(ctype) in ("long", "unsigned long", "signed long", "long int",
                                   "unsigned long int")


def is_callback(ctype: str) -> bool:
    """Whether ``ctype`` is a function pointer the callee may call back."""
    return "(*)" in ctype or _strip_const(ctype) in CALLBACK_TYPEDEFS


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """The Win64 signature of one C-API function.

    ``args`` are the kinds of the fixed arguments in order, ``ret`` the kind of
    the result (``"void"`` for none); ``c_args``/``c_ret`` are the C types
    they come from, so the C ``long`` ones can be told apart from ``int``.
    For a variadic function, ``family`` says how the variable arguments are
    known and ``fmt_arg`` is the index of the format string (of the count for
    ``count``; ``None`` for ``null_terminated``).
    """

    name: str
    ret: str
    args: tuple[str, ...]
    c_ret: str
    c_args: tuple[str, ...]
    variadic: bool = False
    family: str | None = None
    fmt_arg: int | None = None

    @property
    def long_args(self) -> tuple[int, ...]:
        """Indices of the arguments that are C ``long``/``unsigned long``."""
        return tuple(i for i, t in enumerate(self.c_args) if is_c_long(t))

    @property
    def returns_long(self) -> bool:
        """Whether the result is a C ``long``/``unsigned long`` (see ``LONG_RETURN_RULES``)."""
        return is_c_long(self.c_ret)

    @property
    def callback_args(self) -> tuple[int, ...]:
        """Indices of function-pointer arguments CPython will call (System V → Win64 stubs)."""
        return tuple(i for i, t in enumerate(self.c_args) if is_callback(t))


#: Variadic functions: family and the index of the argument that drives it.
#: The ``_SizeT`` variants read ``#`` lengths as ``Py_ssize_t``; see
#: ``hash_is_ssize_t`` for the plain ones.
VARIADIC = {
    "PyArg_Parse": ("parse", 1),
    "PyArg_ParseTuple": ("parse", 1),
    "PyArg_ParseTupleAndKeywords": ("parse", 2),
    "_PyArg_Parse_SizeT": ("parse", 1),
    "_PyArg_ParseTuple_SizeT": ("parse", 1),
    "_PyArg_ParseTupleAndKeywords_SizeT": ("parse", 2),
    "PyArg_UnpackTuple": ("count", 3),
    "Py_BuildValue": ("build", 0),
    "_Py_BuildValue_SizeT": ("build", 0),
    "PyObject_CallFunction": ("build", 1),
    "_PyObject_CallFunction_SizeT": ("build", 1),
    "PyObject_CallMethod": ("build", 2),
    "_PyObject_CallMethod_SizeT": ("build", 2),
    "PyEval_CallFunction": ("build", 1),
    "PyEval_CallMethod": ("build", 2),
    "PySys_Audit": ("build", 1),
    "PyErr_Format": ("format", 1),
    "PyErr_WarnFormat": ("format", 2),
    "PyErr_ResourceWarning": ("format", 2),
    "PyUnicode_FromFormat": ("format", 0),
    "PySys_FormatStdout": ("format", 0),
    "PySys_FormatStderr": ("format", 0),
    "PyBytes_FromFormat": ("bytes_format", 0),
    "PyOS_snprintf": ("printf", 2),
    "PySys_WriteStdout": ("printf", 0),
    "PySys_WriteStderr": ("printf", 0),
    "PyTuple_Pack": ("count", 0),
    "PyObject_CallFunctionObjArgs": ("null_terminated", None),
    "PyObject_CallMethodObjArgs": ("null_terminated", None),
}


def hash_is_ssize_t(name: str, version: tuple[int, int]) -> bool:
    """Whether ``#`` lengths of variadic ``name`` are ``Py_ssize_t`` on ``version``.

    An assembly module calls ``Py_BuildValue`` by its plain name, which before
    3.13 is the variant that reads an ``int`` length (with a
    DeprecationWarning); PyArg_Parse* before 3.13 refuse ``#`` without the
    ``_SizeT`` name (SystemError). From 3.13 every ``#`` is ``Py_ssize_t``.
    """
    return name.endswith("_SizeT") or tuple(version) >= (3, 13)


_PROTOTYPE = re.compile(r"^(\w+)\((.*)\) -> (.+)$")


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_prototype(line: str) -> Signature:
    """A ``Signature`` from one line of the table: ``Name(type, type, ...) -> type``."""
    m = _PROTOTYPE.match(line.strip())
    if not m:
        raise ValueError(f"not a prototype line: {line!r}")
    name, args_text, ret = m.group(1), m.group(2), m.group(3).strip()
    c_args = _split_args(args_text)
    variadic = bool(c_args) and c_args[-1] == "..."
    if variadic:
        c_args = c_args[:-1]
    family, fmt_arg = VARIADIC.get(name, (None, None))
    if variadic != (name in VARIADIC):
        raise ValueError(f"{name}: variadic in the prototype but not in VARIADIC, or the reverse")
    return Signature(
        name=name,
        ret=ctype_kind(ret),
        args=tuple(ctype_kind(t) for t in c_args),
        c_ret=ret,
        c_args=tuple(c_args),
        variadic=variadic,
        family=family,
        fmt_arg=fmt_arg,
    )


def _signatures() -> dict[str, Signature]:
    return _SIGNATURES


def signature(name: str) -> Signature | None:
    """The Win64 signature of C-API function ``name``; ``None`` for data or unknown names."""
    return _signatures().get(name)


def function_names() -> frozenset[str]:
    """Every stable-ABI function the model has a signature for."""
    return frozenset(_signatures())


def data_names() -> frozenset[str]:
    """Every stable-ABI data symbol (an IAT slot holding the variable's address)."""
    return _DATA


def kind_of(name: str) -> str | None:
    """``"function"``, ``"data"`` or ``None`` (not in the stable ABI) for a ``python3.dll`` import."""
    if name in _DATA:
        return "data"
    if name in _signatures():
        return "function"
    return None


# ---------------------------------------------------------------------------
# LLP64: C long is 32 bits on Windows
# ---------------------------------------------------------------------------

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
LONG_MIN, LONG_MAX = -(1 << 31), (1 << 31) - 1
ULONG_MAX = _MASK32


def to_sysv_arg(kind: str, raw: int) -> int:
    """The 64-bit register value System V needs for an integer argument of ``kind``.

    ``raw`` is the whole 64-bit register (or stack slot) the Win64 caller
    filled. Win64 passes an ``int``/``long`` in the low 32 bits and leaves the
    upper half undefined, while a System V callee compiled by GCC reads a C
    ``long`` as all 64 bits: sign-extend ``i32``, zero-extend ``u32``. Other
    integer kinds pass unchanged. The result is the register's bit pattern
    (``0 <= result < 2**64``). Float kinds travel in vector registers and are
    not converted.
    """
    raw &= _MASK64
    if kind == "i32":
        low = raw & _MASK32
        return (low - (1 << 32) if low >> 31 else low) & _MASK64
    if kind == "u32":
        return raw & _MASK32
    if kind in ("i64", "ptr", "va_list"):
        return raw
    raise ValueError(f"to_sysv_arg: {kind!r} is not an integer kind")


def from_sysv_long(value: int) -> tuple[int, bool]:
    """What Windows returns for a C ``long`` the host computed as ``value``.

    Returns ``(win64_value, overflow)``: ``value`` itself when it fits 32
    bits, else ``(-1, True)``: Windows CPython's ``PyLong_AsLong`` returns -1
    and raises ``OverflowError("Python int too large to convert to C long")``.
    """
    if LONG_MIN <= value <= LONG_MAX:
        return value, False
    return -1, True


def from_sysv_unsigned_long(value: int) -> tuple[int, bool]:
    """As ``from_sysv_long`` for ``unsigned long``: ``(2**32 - 1, True)`` past 32 bits."""
    value &= _MASK64
    if value <= ULONG_MAX:
        return value, False
    return ULONG_MAX, True


#: Messages of the OverflowError Windows CPython raises (Objects/longobject.c).
LONG_OVERFLOW = "Python int too large to convert to C long"
ULONG_OVERFLOW = "Python int too large to convert to C unsigned long"

#: How the model turns each C ``long`` result computed on the host into the
#: Windows one: ``checked`` (``from_sysv_long``; overflow raises
#: ``LONG_OVERFLOW``), ``checked_unsigned`` (likewise with ``ULONG_OVERFLOW``),
#: ``flag`` (PyLong_AsLongAndOverflow: -1 and ``*overflow`` = ±1, no
#: exception), ``mask`` (the low 32 bits, as a cast would: the mask
#: conversion, flags, thread ids), ``saturate`` (PyOS_strtol/strtoul: CPython's
#: own Python/mystrtoul.c gives LONG_MAX / ULONG_MAX with ``errno = ERANGE``,
#: and LONG_MIN only for exactly -2**31), ``wrap`` (a value that always fits).
LONG_RETURN_RULES = {
    "PyLong_AsLong": "checked",
    "PyLong_AsUnsignedLong": "checked_unsigned",
    "PyLong_AsLongAndOverflow": "flag",
    "PyLong_AsUnsignedLongMask": "mask",
    "PyType_GetFlags": "mask",
    "PyThread_get_thread_ident": "mask",
    "PyThread_get_thread_native_id": "mask",
    "PyThread_start_new_thread": "mask",
    "PyOS_strtol": "saturate",
    "PyOS_strtoul": "saturate",
    "PyImport_GetMagicNumber": "wrap",
}


class WindowsReturn(NamedTuple):
    """The Windows outcome of a C ``long`` result.

    ``value`` is the C value the Win64 caller gets in ``eax`` (signed for
    ``long``, unsigned for ``unsigned long``); ``error`` is
    ``("OverflowError", message)`` when the model must raise, else ``None``;
    ``overflow_flag`` is what to store in PyLong_AsLongAndOverflow's
    ``*overflow`` (``None``: leave what the host wrote).
    """

    value: int
    error: tuple[str, str] | None = None
    overflow_flag: int | None = None


def windows_return(name: str, value: int, error_set: bool) -> WindowsReturn:
    """The Windows result of C-API function ``name`` whose host result is ``value``.

    ``value`` is the host's C result (signed for ``long``, unsigned for
    ``unsigned long``); ``error_set`` whether the host call left an exception
    set. An exception the host already raised is kept (its -1 is passed
    through) and never replaced, as Windows would have raised the same one.
    """
    rule = LONG_RETURN_RULES.get(name)
    if rule is None:
        raise KeyError(f"{name} does not return a C long")
    unsigned = _strip_const(signature(name).c_ret) == "unsigned long"
    if unsigned:
        value &= _MASK64
    if rule == "mask" or rule == "wrap":
        low = value & _MASK32
        if not unsigned and low >> 31:
            low -= 1 << 32
        return WindowsReturn(low)
    if error_set:
        return WindowsReturn(ULONG_MAX if unsigned else -1)
    if rule == "checked":
        win, overflow = from_sysv_long(value)
        return WindowsReturn(win, ("OverflowError", LONG_OVERFLOW) if overflow else None)
    if rule == "checked_unsigned":
        win, overflow = from_sysv_unsigned_long(value)
        return WindowsReturn(win, ("OverflowError", ULONG_OVERFLOW) if overflow else None)
    if rule == "flag":
        win, overflow = from_sysv_long(value)
        return WindowsReturn(win, None, (1 if value > 0 else -1) if overflow else None)
    if rule == "saturate":
        if unsigned:
            return WindowsReturn(value if value <= ULONG_MAX else ULONG_MAX)
        return WindowsReturn(value if LONG_MIN <= value <= LONG_MAX else LONG_MAX)
    raise AssertionError(f"unknown rule {rule!r}")


def windows_parse_long(unit: str, value: int) -> tuple[int, tuple[str, str] | None]:
    """What the Windows ``l``/``k`` unit of PyArg_Parse* stores, from the host's 64-bit result.

    The host writes 8 bytes where the Windows module reserved 4, so the model
    parses into its own 8-byte slot and stores the Windows value (4 bytes)
    itself. ``l`` is ``PyLong_AsLong`` on Windows: out of 32 bits the parse
    fails with ``LONG_OVERFLOW``; ``k`` is ``PyLong_AsUnsignedLongMask``: the
    low 32 bits, no error. Returns ``(value, error)``.
    """
    if unit == "l":
        win, overflow = from_sysv_long(value)
        return win, (("OverflowError", LONG_OVERFLOW) if overflow else None)
    if unit == "k":
        return value & _MASK32, None
    raise ValueError(f"unit {unit!r} has no C long")


# ---------------------------------------------------------------------------
# Variadic arguments from a format string
# ---------------------------------------------------------------------------

class VarArg(NamedTuple):
    """One variable argument: its kind, the format unit it belongs to and its C type.

    ``c_type`` says what the model must take care of beyond placement: a
    ``long *`` / ``unsigned long *`` of a parse unit points at 4 bytes on
    Windows (see ``windows_parse_long``); a ``long``/``unsigned long`` value
    has kind ``i32``/``u32`` (``to_sysv_arg``); a converter of ``O&`` is a
    Win64 function CPython will call (a System V → Win64 stub).
    """

    kind: str
    unit: str
    c_type: str


def _length(ssize_t: bool, pointer: bool) -> str:
    base = "Py_ssize_t" if ssize_t else "int"
    return base + " *" if pointer else base


#: Parse units that store one scalar through a pointer, with its C type.
_PARSE_SCALARS = {
    "b": "unsigned char *", "B": "unsigned char *", "h": "short *", "H": "unsigned short *",
    "i": "int *", "I": "unsigned int *", "l": "long *", "k": "unsigned long *",
    "L": "long long *", "K": "unsigned long long *", "n": "Py_ssize_t *", "c": "char *",
    "C": "int *", "f": "float *", "d": "double *", "D": "Py_complex *", "p": "int *",
    "S": "PyBytesObject **", "Y": "PyByteArrayObject **", "U": "PyObject **",
}


def _parse_units(fmt: bytes, ssize_t: bool) -> list[VarArg]:
    """PyArg_Parse* (Python/getargs.c): every argument is a pointer."""
    out: list[VarArg] = []
    text = fmt.decode("latin-1")
    i, depth, seen_bar, seen_dollar = 0, 0, False, False

    def err(pos: int, unit: str, why: str) -> FormatError:
        return FormatError("parse", fmt, pos, unit, why)

    while i < len(text):
        c = text[i]
        start = i
        i += 1
        if c in ":;":
            break  # the rest is the function name or the error message
        if c == "(":
            depth += 1
            continue
        if c == ")":
            if depth == 0:
                raise err(start, c, "')' without '('")
            depth -= 1
            continue
        if c == "|":
            if seen_bar or depth:
                raise err(start, c, "'|' twice or inside a tuple")
            seen_bar = True
            continue
        if c == "$":
            if seen_dollar or depth:
                raise err(start, c, "'$' twice or inside a tuple")
            seen_dollar = True
            continue
        nxt = text[i] if i < len(text) else ""
        if c in _PARSE_SCALARS:
            out.append(VarArg("ptr", c, _PARSE_SCALARS[c]))
        elif c in "szy":
            if nxt == "*":
                i += 1
                out.append(VarArg("ptr", c + "*", "Py_buffer *"))
            elif nxt == "#":
                i += 1
                out.append(VarArg("ptr", c + "#", "const char **"))
                out.append(VarArg("ptr", c + "#", _length(ssize_t, True)))
            else:
                out.append(VarArg("ptr", c, "const char **"))
        elif c in "uZ":
            # Py_UNICODE units: removed in 3.12, still parsed by 3.11.
            if nxt == "#":
                i += 1
                out.append(VarArg("ptr", c + "#", "const wchar_t **"))
                out.append(VarArg("ptr", c + "#", _length(ssize_t, True)))
            else:
                out.append(VarArg("ptr", c, "const wchar_t **"))
        elif c == "w":
            if nxt != "*":
                raise err(start, c + nxt, "'w' must be written 'w*'")
            i += 1
            out.append(VarArg("ptr", "w*", "Py_buffer *"))
        elif c == "e":
            if nxt not in ("s", "t"):
                raise err(start, c + nxt, "'e' must be followed by 's' or 't'")
            i += 1
            unit = "e" + nxt
            if i < len(text) and text[i] == "#":
                i += 1
                unit += "#"
            out.append(VarArg("ptr", unit, "const char *"))
            out.append(VarArg("ptr", unit, "char **"))
            if unit.endswith("#"):
                out.append(VarArg("ptr", unit, _length(ssize_t, True)))
        elif c == "O":
            if nxt == "!":
                i += 1
                out.append(VarArg("ptr", "O!", "PyTypeObject *"))
                out.append(VarArg("ptr", "O!", "PyObject **"))
            elif nxt == "&":
                i += 1
                out.append(VarArg("ptr", "O&", "int (*)(PyObject *, void *)"))
                out.append(VarArg("ptr", "O&", "void *"))
            else:
                out.append(VarArg("ptr", "O", "PyObject **"))
        else:
            raise err(start, c, "not a PyArg_Parse format unit")
    if depth:
        raise err(len(text), "(", "unclosed '('")
    return out


#: Build units that take one value, with its C type as passed through '...'
#: (char, short and float are promoted to int and double).
_BUILD_VALUES = {
    "b": "int", "B": "int", "h": "int", "H": "int", "c": "int", "C": "int", "i": "int",
    "I": "unsigned int", "l": "long", "k": "unsigned long", "L": "long long",
    "K": "unsigned long long", "n": "Py_ssize_t", "d": "double", "f": "double",
    "D": "Py_complex *", "O": "PyObject *", "S": "PyObject *", "N": "PyObject *",
}
_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _build_units(fmt: bytes, ssize_t: bool) -> list[VarArg]:
    """Py_BuildValue (Python/modsupport.c): values, promoted as C varargs are."""
    out: list[VarArg] = []
    text = fmt.decode("latin-1")
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        c = text[i]
        start = i
        i += 1
        nxt = text[i] if i < len(text) else ""
        if c in " \t,:":
            continue
        if c in _CLOSE:
            stack.append((c, start))
        elif c in ")]}":
            if not stack or _CLOSE[stack[-1][0]] != c:
                raise FormatError("build", fmt, start, c, "unmatched closing bracket")
            stack.pop()
        elif c in _BUILD_VALUES:
            if c == "O" and nxt == "&":
                i += 1
                out.append(VarArg("ptr", "O&", "PyObject *(*)(void *)"))
                out.append(VarArg("ptr", "O&", "void *"))
            else:
                out.append(VarArg(ctype_kind(_BUILD_VALUES[c]), c, _BUILD_VALUES[c]))
        elif c in "szyuU":
            c_type = "const wchar_t *" if c == "u" else "const char *"
            out.append(VarArg("ptr", c + ("#" if nxt == "#" else ""), c_type))
            if nxt == "#":
                i += 1
                out.append(VarArg(ctype_kind(_length(ssize_t, False)), c + "#", _length(ssize_t, False)))
        else:
            raise FormatError("build", fmt, start, c, "not a Py_BuildValue format unit")
    if stack:
        opener, pos = stack[-1]
        raise FormatError("build", fmt, pos, opener, "unclosed bracket")
    return out


#: The C type a length modifier gives an integer conversion (signed, unsigned).
#: ``h``/``hh`` values are promoted to ``int`` by the call; ``I64``, ``I32`` and
#: ``I`` are Microsoft's.
_SIGNED = {"": "int", "hh": "int", "h": "int", "l": "long", "ll": "long long", "j": "intmax_t",
           "z": "Py_ssize_t", "t": "ptrdiff_t", "I64": "long long", "I32": "int", "I": "Py_ssize_t"}
_UNSIGNED = {"": "unsigned int", "hh": "unsigned int", "h": "unsigned int", "l": "unsigned long",
             "ll": "unsigned long long", "j": "uintmax_t", "z": "size_t", "t": "ptrdiff_t",
             "I64": "unsigned long long", "I32": "unsigned int", "I": "size_t"}


def _printf_like(family: str, fmt: bytes) -> list[VarArg]:
    """One scanner for the three printf-like families; each accepts its own set.

    ``format``: PyUnicode_FromFormat (flags ``-0#``, width/precision digits or
    ``*``, lengths ``l ll j z t``, conversions ``c d i u o x X p s A U S R T N V``);
    ``bytes_format``: PyBytes_FromFormat (digits only, lengths ``l z``,
    conversions ``c d i u x s p``); ``printf``: the C library (flags ``-+ #0``,
    lengths ``hh h l ll j z t`` and Microsoft's ``I32 I64 I``, conversions
    ``d i u o x X c s p n e E f F g G a A``; ``L`` (long double) is refused:
    64 bits on Windows, 80 on System V, passed in memory).
    """
    out: list[VarArg] = []
    text = fmt.decode("latin-1")
    n = len(text)
    i = 0
    flags_ok = {"format": "-0#", "bytes_format": "", "printf": "-+ #0"}[family]
    star_ok = family != "bytes_format"
    lengths = {"format": ("ll", "l", "j", "z", "t"), "bytes_format": ("l", "z"),
               "printf": ("hh", "h", "ll", "l", "j", "z", "t", "I64", "I32", "I", "L")}[family]
    convs = {"format": "cdiuoxXpsAUSRTNV", "bytes_format": "cdiuxsp",
             "printf": "diuoxXcspneEfFgGaA"}[family]
    while i < n:
        if text[i] != "%":
            i += 1
            continue
        start = i
        i += 1
        if i < n and text[i] == "%":
            i += 1
            continue
        while i < n and text[i] in flags_ok:
            i += 1
        for part in ("width", "precision"):
            if part == "precision":
                if i < n and text[i] == ".":
                    i += 1
                else:
                    break
            if i < n and text[i] == "*":
                if not star_ok:
                    raise FormatError(family, fmt, start, text[start:i + 1], "'*' is not supported here")
                out.append(VarArg("i32", text[start:i + 1], "int"))
                i += 1
            else:
                while i < n and text[i].isdigit():
                    i += 1
        length = ""
        for cand in lengths:
            if text.startswith(cand, i):
                length = cand
                i += len(cand)
                break
        if i >= n:
            raise FormatError(family, fmt, start, text[start:], "format ends inside a conversion")
        conv = text[i]
        i += 1
        unit = text[start:i]
        if conv not in convs:
            raise FormatError(family, fmt, start, unit, "not a conversion of this function")
        if length == "L":
            raise FormatError(family, fmt, start, unit,
                              "long double differs between Win64 (64-bit) and System V (80-bit)")
        if conv in "di":
            c_type = _SIGNED[length]
        elif conv in "uoxX":
            c_type = _UNSIGNED[length]
        elif conv == "c":
            if length not in ("", "l"):
                raise FormatError(family, fmt, start, unit, "a length on %c")
            c_type = "int"  # char (or wint_t for %lc) promoted to int
        elif conv in "eEfFgGaA" and family == "printf":
            if length not in ("", "l"):
                raise FormatError(family, fmt, start, unit, "a length on a float conversion")
            c_type = "double"
        elif conv == "s":
            if length not in ("", "l"):
                raise FormatError(family, fmt, start, unit, "only 'l' may modify %s")
            c_type = "const wchar_t *" if length == "l" else "const char *"
        elif conv == "V":
            if length not in ("", "l"):
                raise FormatError(family, fmt, start, unit, "only 'l' may modify %V")
            out.append(VarArg("ptr", unit, "PyObject *"))
            c_type = "const wchar_t *" if length == "l" else "const char *"
        elif conv in "pn":
            if length and conv == "p":
                raise FormatError(family, fmt, start, unit, "a length on %p")
            c_type = "void *"
        else:  # A U S R T N: objects
            if length:
                raise FormatError(family, fmt, start, unit, "a length on an object conversion")
            c_type = "PyTypeObject *" if conv == "N" else "PyObject *"
        out.append(VarArg(ctype_kind(c_type), unit, c_type))
    return out


def varargs_units(family: str, fmt: bytes, *, ssize_t: bool = True) -> list[VarArg]:
    """The variable arguments a format string of ``family`` consumes, in order.

    ``ssize_t`` says whether ``#`` lengths are ``Py_ssize_t`` (else ``int``;
    see ``hash_is_ssize_t``). Raises ``FormatError`` naming the unit for a
    format the function would reject or the model cannot place.
    """
    if not isinstance(fmt, (bytes, bytearray)):
        raise TypeError("the format is the bytes the module passed")
    fmt = bytes(fmt)
    if family == "parse":
        return _parse_units(fmt, ssize_t)
    if family == "build":
        return _build_units(fmt, ssize_t)
    if family in ("format", "bytes_format", "printf"):
        return _printf_like(family, fmt)
    raise ValueError(f"family {family!r} has no format string (one of {FAMILIES})")


def varargs_kinds(family: str, fmt: bytes, *, ssize_t: bool = True) -> list[str]:
    """The kinds of the variable arguments for ``fmt``: ``[v.kind for v in varargs_units(...)]``."""
    return [v.kind for v in varargs_units(family, fmt, ssize_t=ssize_t)]


# ---------------------------------------------------------------------------
# Where each argument lives
# ---------------------------------------------------------------------------

class Location(NamedTuple):
    """Where one argument is: ``where`` is ``"gpr"``, ``"xmm"`` or ``"stack"``.

    ``reg`` names the register (``"rdi"``, ``"xmm0"``); ``offset`` is the byte
    offset of a stack slot (what it is relative to is said by the function
    that returns it). ``copy`` is the second register that also holds the
    value: Win64 variadic floats are in both an xmm and the matching integer
    register.
    """

    where: str
    reg: str | None = None
    offset: int | None = None
    copy: str | None = None


class Placement(NamedTuple):
    """A System V call: each argument's ``Location``, the stack area and ``al``.

    ``stack_bytes`` is the size of the outgoing argument area, a multiple of
    16 so that ``rsp`` stays aligned at the ``call``; ``al`` is the number of
    vector registers used, set for a variadic callee (``None`` otherwise).
    """

    locations: list[Location]
    stack_bytes: int
    al: int | None


SYSV_GPR = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
WIN64_GPR = ("rcx", "rdx", "r8", "r9")
#: Win64: the first stack argument at the callee's entry, above the return
#: address (8) and the 32-byte shadow space.
WIN64_FIRST_STACK_ARG = 40


def _check_kinds(kinds) -> list[str]:
    kinds = list(kinds)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"not an argument kind: {k!r} (one of {KINDS})")
    return kinds


def sysv_placement(kinds, variadic: bool) -> Placement:
    """System V placement of a call with arguments of ``kinds``.

    Integers and pointers in rdi, rsi, rdx, rcx, r8, r9, floats in xmm0–xmm7,
    counted apart; the rest on the stack in order, 8 bytes each, at offsets
    from ``rsp`` *at the call instruction* (0, 8, ...). Variadic arguments are
    placed the same way; the caller then sets ``al`` to the number of vector
    registers used (an upper bound is allowed; this gives the exact count).
    """
    kinds = _check_kinds(kinds)
    locations: list[Location] = []
    gpr = xmm = stack = 0
    for kind in kinds:
        if kind in FLOAT_KINDS:
            if xmm < 8:
                locations.append(Location("xmm", f"xmm{xmm}"))
                xmm += 1
                continue
        elif gpr < len(SYSV_GPR):
            locations.append(Location("gpr", SYSV_GPR[gpr]))
            gpr += 1
            continue
        locations.append(Location("stack", offset=stack))
        stack += 8
    stack_bytes = (stack + 15) // 16 * 16
    return Placement(locations, stack_bytes, xmm if variadic else None)


def win64_sources(kinds, fixed: int | None = None) -> list[Location]:
    """Where a Win64 callee finds each argument of ``kinds`` at its entry.

    By position: argument 0–3 in rcx, rdx, r8, r9 or, for a float, xmm0–xmm3
    (argument 2 a double → xmm2); from argument 4 on the stack at ``rsp+40``,
    ``rsp+48``, ... (``rsp`` at the callee's entry: return address, then the
    32-byte shadow space). ``fixed`` is the number of named arguments of a
    variadic function (``None``: not variadic): a float among the variable
    arguments in the first four positions is in the integer register too
    (the one ``va_arg`` reads once the callee spills them to the shadow
    space), given as ``reg`` with the xmm as ``copy``.
    """
    kinds = _check_kinds(kinds)
    out: list[Location] = []
    for i, kind in enumerate(kinds):
        if i >= 4:
            out.append(Location("stack", offset=WIN64_FIRST_STACK_ARG + 8 * (i - 4)))
        elif kind in FLOAT_KINDS:
            if fixed is not None and i >= fixed:
                out.append(Location("gpr", WIN64_GPR[i], copy=f"xmm{i}"))
            else:
                out.append(Location("xmm", f"xmm{i}"))
        else:
            out.append(Location("gpr", WIN64_GPR[i]))
    return out


def return_location(kind: str) -> Location | None:
    """Where the result is on both ABIs: rax for integers, xmm0 for floats, ``None`` for void."""
    if kind == "void":
        return None
    if kind in FLOAT_KINDS:
        return Location("xmm", "xmm0")
    _check_kinds([kind])
    return Location("gpr", "rax")


# ---------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------

#: One line per stable-ABI function of python3.def: ``Name(C types) -> C type``.
_PROTOTYPES = """
_Py_BuildValue_SizeT(const char *, ...) -> PyObject *
_Py_CheckRecursiveCall(PyThreadState *, const char *) -> int
_Py_Dealloc(PyObject *) -> void
_Py_DecRef(PyObject *) -> void
_Py_IncRef(PyObject *) -> void
_Py_NegativeRefcount(const char *, int, PyObject *) -> void
_Py_SetRefcnt(PyObject *, Py_ssize_t) -> void
_Py_VaBuildValue_SizeT(const char *, va_list) -> PyObject *
_PyArg_Parse_SizeT(PyObject *, const char *, ...) -> int
_PyArg_ParseTuple_SizeT(PyObject *, const char *, ...) -> int
_PyArg_ParseTupleAndKeywords_SizeT(PyObject *, PyObject *, const char *, char **, ...) -> int
_PyArg_VaParse_SizeT(PyObject *, const char *, va_list) -> int
_PyArg_VaParseTupleAndKeywords_SizeT(PyObject *, PyObject *, const char *, char **, va_list) -> int
_PyErr_BadInternalCall(const char *, int) -> void
_PyObject_CallFunction_SizeT(PyObject *, const char *, ...) -> PyObject *
_PyObject_CallMethod_SizeT(PyObject *, const char *, const char *, ...) -> PyObject *
_PyObject_GC_New(PyTypeObject *) -> PyObject *
_PyObject_GC_NewVar(PyTypeObject *, Py_ssize_t) -> PyVarObject *
_PyObject_GC_Resize(PyVarObject *, Py_ssize_t) -> PyVarObject *
_PyObject_New(PyTypeObject *) -> PyObject *
_PyObject_NewVar(PyTypeObject *, Py_ssize_t) -> PyVarObject *
_PyState_AddModule(PyThreadState *, PyObject *, PyModuleDef *) -> int
_PyThreadState_Init(PyThreadState *) -> void
_PyThreadState_Prealloc(PyInterpreterState *) -> PyThreadState *
Py_AddPendingCall(int (*)(void *), void *) -> int
Py_AtExit(void (*)(void)) -> int
Py_BuildValue(const char *, ...) -> PyObject *
Py_BytesMain(int, char **) -> int
Py_CompileString(const char *, const char *, int) -> PyObject *
Py_DecodeLocale(const char *, size_t *) -> wchar_t *
Py_DecRef(PyObject *) -> void
Py_EncodeLocale(const wchar_t *, size_t *) -> char *
Py_EndInterpreter(PyThreadState *) -> void
Py_EnterRecursiveCall(const char *) -> int
Py_Exit(int) -> void
Py_FatalError(const char *) -> void
Py_Finalize() -> void
Py_FinalizeEx() -> int
Py_GenericAlias(PyObject *, PyObject *) -> PyObject *
Py_GetArgcArgv(int *, wchar_t ***) -> void
Py_GetBuildInfo() -> const char *
Py_GetCompiler() -> const char *
Py_GetConstant(unsigned int) -> PyObject *
Py_GetConstantBorrowed(unsigned int) -> PyObject *
Py_GetCopyright() -> const char *
Py_GetExecPrefix() -> wchar_t *
Py_GetPath() -> wchar_t *
Py_GetPlatform() -> const char *
Py_GetPrefix() -> wchar_t *
Py_GetProgramFullPath() -> wchar_t *
Py_GetProgramName() -> wchar_t *
Py_GetPythonHome() -> wchar_t *
Py_GetRecursionLimit() -> int
Py_GetVersion() -> const char *
Py_IncRef(PyObject *) -> void
Py_Initialize() -> void
Py_InitializeEx(int) -> void
Py_Is(PyObject *, PyObject *) -> int
Py_IS_TYPE(PyObject *, PyTypeObject *) -> int
Py_IsFalse(PyObject *) -> int
Py_IsFinalizing() -> int
Py_IsInitialized() -> int
Py_IsNone(PyObject *) -> int
Py_IsTrue(PyObject *) -> int
Py_LeaveRecursiveCall() -> void
Py_Main(int, wchar_t **) -> int
Py_MakePendingCalls() -> int
Py_NewInterpreter() -> PyThreadState *
Py_NewRef(PyObject *) -> PyObject *
Py_PACK_FULL_VERSION(int, int, int, int, int) -> uint32_t
Py_PACK_VERSION(int, int) -> uint32_t
Py_REFCNT(PyObject *) -> Py_ssize_t
Py_ReprEnter(PyObject *) -> int
Py_ReprLeave(PyObject *) -> void
Py_SET_SIZE(PyVarObject *, Py_ssize_t) -> void
Py_SetPath(const wchar_t *) -> void
Py_SetProgramName(const wchar_t *) -> void
Py_SetPythonHome(const wchar_t *) -> void
Py_SetRecursionLimit(int) -> void
Py_SIZE(PyObject *) -> Py_ssize_t
Py_TYPE(PyObject *) -> PyTypeObject *
Py_VaBuildValue(const char *, va_list) -> PyObject *
Py_XNewRef(PyObject *) -> PyObject *
PyABIInfo_Check(PyABIInfo *, const char *) -> int
PyAIter_Check(PyObject *) -> int
PyArg_Parse(PyObject *, const char *, ...) -> int
PyArg_ParseTuple(PyObject *, const char *, ...) -> int
PyArg_ParseTupleAndKeywords(PyObject *, PyObject *, const char *, char **, ...) -> int
PyArg_UnpackTuple(PyObject *, const char *, Py_ssize_t, Py_ssize_t, ...) -> int
PyArg_ValidateKeywordArguments(PyObject *) -> int
PyArg_VaParse(PyObject *, const char *, va_list) -> int
PyArg_VaParseTupleAndKeywords(PyObject *, PyObject *, const char *, char **, va_list) -> int
PyBool_FromLong(long) -> PyObject *
PyBuffer_FillContiguousStrides(int, Py_ssize_t *, Py_ssize_t *, int, char) -> void
PyBuffer_FillInfo(Py_buffer *, PyObject *, void *, Py_ssize_t, int, int) -> int
PyBuffer_FromContiguous(const Py_buffer *, const void *, Py_ssize_t, char) -> int
PyBuffer_GetPointer(const Py_buffer *, const Py_ssize_t *) -> void *
PyBuffer_IsContiguous(const Py_buffer *, char) -> int
PyBuffer_Release(Py_buffer *) -> void
PyBuffer_SizeFromFormat(const char *) -> Py_ssize_t
PyBuffer_ToContiguous(void *, const Py_buffer *, Py_ssize_t, char) -> int
PyByteArray_AsString(PyObject *) -> char *
PyByteArray_Concat(PyObject *, PyObject *) -> PyObject *
PyByteArray_FromObject(PyObject *) -> PyObject *
PyByteArray_FromStringAndSize(const char *, Py_ssize_t) -> PyObject *
PyByteArray_Resize(PyObject *, Py_ssize_t) -> int
PyByteArray_Size(PyObject *) -> Py_ssize_t
PyBytes_AsString(PyObject *) -> char *
PyBytes_AsStringAndSize(PyObject *, char **, Py_ssize_t *) -> int
PyBytes_Concat(PyObject **, PyObject *) -> void
PyBytes_ConcatAndDel(PyObject **, PyObject *) -> void
PyBytes_DecodeEscape(const char *, Py_ssize_t, const char *, Py_ssize_t, const char *) -> PyObject *
PyBytes_FromFormat(const char *, ...) -> PyObject *
PyBytes_FromFormatV(const char *, va_list) -> PyObject *
PyBytes_FromObject(PyObject *) -> PyObject *
PyBytes_FromString(const char *) -> PyObject *
PyBytes_FromStringAndSize(const char *, Py_ssize_t) -> PyObject *
PyBytes_Repr(PyObject *, int) -> PyObject *
PyBytes_Size(PyObject *) -> Py_ssize_t
PyCallable_Check(PyObject *) -> int
PyCallIter_New(PyObject *, PyObject *) -> PyObject *
PyCapsule_GetContext(PyObject *) -> void *
PyCapsule_GetDestructor(PyObject *) -> PyCapsule_Destructor
PyCapsule_GetName(PyObject *) -> const char *
PyCapsule_GetPointer(PyObject *, const char *) -> void *
PyCapsule_Import(const char *, int) -> void *
PyCapsule_IsValid(PyObject *, const char *) -> int
PyCapsule_New(void *, const char *, PyCapsule_Destructor) -> PyObject *
PyCapsule_SetContext(PyObject *, void *) -> int
PyCapsule_SetDestructor(PyObject *, PyCapsule_Destructor) -> int
PyCapsule_SetName(PyObject *, const char *) -> int
PyCapsule_SetPointer(PyObject *, void *) -> int
PyCFunction_Call(PyObject *, PyObject *, PyObject *) -> PyObject *
PyCFunction_GetFlags(PyObject *) -> int
PyCFunction_GetFunction(PyObject *) -> PyCFunction
PyCFunction_GetSelf(PyObject *) -> PyObject *
PyCFunction_New(PyMethodDef *, PyObject *) -> PyObject *
PyCFunction_NewEx(PyMethodDef *, PyObject *, PyObject *) -> PyObject *
PyCMethod_New(PyMethodDef *, PyObject *, PyObject *, PyTypeObject *) -> PyObject *
PyCodec_BackslashReplaceErrors(PyObject *) -> PyObject *
PyCodec_Decode(PyObject *, const char *, const char *) -> PyObject *
PyCodec_Decoder(const char *) -> PyObject *
PyCodec_Encode(PyObject *, const char *, const char *) -> PyObject *
PyCodec_Encoder(const char *) -> PyObject *
PyCodec_IgnoreErrors(PyObject *) -> PyObject *
PyCodec_IncrementalDecoder(const char *, const char *) -> PyObject *
PyCodec_IncrementalEncoder(const char *, const char *) -> PyObject *
PyCodec_KnownEncoding(const char *) -> int
PyCodec_LookupError(const char *) -> PyObject *
PyCodec_NameReplaceErrors(PyObject *) -> PyObject *
PyCodec_Register(PyObject *) -> int
PyCodec_RegisterError(const char *, PyObject *) -> int
PyCodec_ReplaceErrors(PyObject *) -> PyObject *
PyCodec_StreamReader(const char *, PyObject *, const char *) -> PyObject *
PyCodec_StreamWriter(const char *, PyObject *, const char *) -> PyObject *
PyCodec_StrictErrors(PyObject *) -> PyObject *
PyCodec_Unregister(PyObject *) -> int
PyCodec_XMLCharRefReplaceErrors(PyObject *) -> PyObject *
PyComplex_FromDoubles(double, double) -> PyObject *
PyComplex_ImagAsDouble(PyObject *) -> double
PyComplex_RealAsDouble(PyObject *) -> double
PyDescr_NewClassMethod(PyTypeObject *, PyMethodDef *) -> PyObject *
PyDescr_NewGetSet(PyTypeObject *, PyGetSetDef *) -> PyObject *
PyDescr_NewMember(PyTypeObject *, PyMemberDef *) -> PyObject *
PyDescr_NewMethod(PyTypeObject *, PyMethodDef *) -> PyObject *
PyDict_Clear(PyObject *) -> void
PyDict_Contains(PyObject *, PyObject *) -> int
PyDict_Copy(PyObject *) -> PyObject *
PyDict_DelItem(PyObject *, PyObject *) -> int
PyDict_DelItemString(PyObject *, const char *) -> int
PyDict_GetItem(PyObject *, PyObject *) -> PyObject *
PyDict_GetItemRef(PyObject *, PyObject *, PyObject **) -> int
PyDict_GetItemString(PyObject *, const char *) -> PyObject *
PyDict_GetItemStringRef(PyObject *, const char *, PyObject **) -> int
PyDict_GetItemWithError(PyObject *, PyObject *) -> PyObject *
PyDict_Items(PyObject *) -> PyObject *
PyDict_Keys(PyObject *) -> PyObject *
PyDict_Merge(PyObject *, PyObject *, int) -> int
PyDict_MergeFromSeq2(PyObject *, PyObject *, int) -> int
PyDict_New() -> PyObject *
PyDict_Next(PyObject *, Py_ssize_t *, PyObject **, PyObject **) -> int
PyDict_SetDefaultRef(PyObject *, PyObject *, PyObject *, PyObject **) -> int
PyDict_SetItem(PyObject *, PyObject *, PyObject *) -> int
PyDict_SetItemString(PyObject *, const char *, PyObject *) -> int
PyDict_Size(PyObject *) -> Py_ssize_t
PyDict_Update(PyObject *, PyObject *) -> int
PyDict_Values(PyObject *) -> PyObject *
PyDictProxy_New(PyObject *) -> PyObject *
PyErr_BadArgument() -> int
PyErr_BadInternalCall() -> void
PyErr_CheckSignals() -> int
PyErr_Clear() -> void
PyErr_Display(PyObject *, PyObject *, PyObject *) -> void
PyErr_DisplayException(PyObject *) -> void
PyErr_ExceptionMatches(PyObject *) -> int
PyErr_Fetch(PyObject **, PyObject **, PyObject **) -> void
PyErr_Format(PyObject *, const char *, ...) -> PyObject *
PyErr_FormatV(PyObject *, const char *, va_list) -> PyObject *
PyErr_GetExcInfo(PyObject **, PyObject **, PyObject **) -> void
PyErr_GetHandledException() -> PyObject *
PyErr_GetRaisedException() -> PyObject *
PyErr_GivenExceptionMatches(PyObject *, PyObject *) -> int
PyErr_NewException(const char *, PyObject *, PyObject *) -> PyObject *
PyErr_NewExceptionWithDoc(const char *, const char *, PyObject *, PyObject *) -> PyObject *
PyErr_NoMemory() -> PyObject *
PyErr_NormalizeException(PyObject **, PyObject **, PyObject **) -> void
PyErr_Occurred() -> PyObject *
PyErr_Print() -> void
PyErr_PrintEx(int) -> void
PyErr_ProgramText(const char *, int) -> PyObject *
PyErr_ResourceWarning(PyObject *, Py_ssize_t, const char *, ...) -> int
PyErr_Restore(PyObject *, PyObject *, PyObject *) -> void
PyErr_SetExcFromWindowsErr(PyObject *, int) -> PyObject *
PyErr_SetExcFromWindowsErrWithFilename(PyObject *, int, const char *) -> PyObject *
PyErr_SetExcFromWindowsErrWithFilenameObject(PyObject *, int, PyObject *) -> PyObject *
PyErr_SetExcFromWindowsErrWithFilenameObjects(PyObject *, int, PyObject *, PyObject *) -> PyObject *
PyErr_SetExcInfo(PyObject *, PyObject *, PyObject *) -> void
PyErr_SetFromErrno(PyObject *) -> PyObject *
PyErr_SetFromErrnoWithFilename(PyObject *, const char *) -> PyObject *
PyErr_SetFromErrnoWithFilenameObject(PyObject *, PyObject *) -> PyObject *
PyErr_SetFromErrnoWithFilenameObjects(PyObject *, PyObject *, PyObject *) -> PyObject *
PyErr_SetFromWindowsErr(int) -> PyObject *
PyErr_SetFromWindowsErrWithFilename(int, const char *) -> PyObject *
PyErr_SetHandledException(PyObject *) -> void
PyErr_SetImportError(PyObject *, PyObject *, PyObject *) -> PyObject *
PyErr_SetImportErrorSubclass(PyObject *, PyObject *, PyObject *, PyObject *) -> PyObject *
PyErr_SetInterrupt() -> void
PyErr_SetInterruptEx(int) -> int
PyErr_SetNone(PyObject *) -> void
PyErr_SetObject(PyObject *, PyObject *) -> void
PyErr_SetRaisedException(PyObject *) -> void
PyErr_SetString(PyObject *, const char *) -> void
PyErr_SyntaxLocation(const char *, int) -> void
PyErr_SyntaxLocationEx(const char *, int, int) -> void
PyErr_WarnEx(PyObject *, const char *, Py_ssize_t) -> int
PyErr_WarnExplicit(PyObject *, const char *, const char *, int, const char *, PyObject *) -> int
PyErr_WarnFormat(PyObject *, Py_ssize_t, const char *, ...) -> int
PyErr_WriteUnraisable(PyObject *) -> void
PyEval_AcquireLock() -> void
PyEval_AcquireThread(PyThreadState *) -> void
PyEval_CallFunction(PyObject *, const char *, ...) -> PyObject *
PyEval_CallMethod(PyObject *, const char *, const char *, ...) -> PyObject *
PyEval_CallObjectWithKeywords(PyObject *, PyObject *, PyObject *) -> PyObject *
PyEval_EvalCode(PyObject *, PyObject *, PyObject *) -> PyObject *
PyEval_EvalCodeEx(PyObject *, PyObject *, PyObject *, PyObject * const *, int, PyObject * const *, int, PyObject * const *, int, PyObject *, PyObject *) -> PyObject *
PyEval_EvalFrame(PyFrameObject *) -> PyObject *
PyEval_EvalFrameEx(PyFrameObject *, int) -> PyObject *
PyEval_GetBuiltins() -> PyObject *
PyEval_GetFrame() -> PyFrameObject *
PyEval_GetFrameBuiltins() -> PyObject *
PyEval_GetFrameGlobals() -> PyObject *
PyEval_GetFrameLocals() -> PyObject *
PyEval_GetFuncDesc(PyObject *) -> const char *
PyEval_GetFuncName(PyObject *) -> const char *
PyEval_GetGlobals() -> PyObject *
PyEval_GetLocals() -> PyObject *
PyEval_InitThreads() -> void
PyEval_ReleaseLock() -> void
PyEval_ReleaseThread(PyThreadState *) -> void
PyEval_RestoreThread(PyThreadState *) -> void
PyEval_SaveThread() -> PyThreadState *
PyEval_ThreadsInitialized() -> int
PyException_GetArgs(PyObject *) -> PyObject *
PyException_GetCause(PyObject *) -> PyObject *
PyException_GetContext(PyObject *) -> PyObject *
PyException_GetTraceback(PyObject *) -> PyObject *
PyException_SetArgs(PyObject *, PyObject *) -> void
PyException_SetCause(PyObject *, PyObject *) -> void
PyException_SetContext(PyObject *, PyObject *) -> void
PyException_SetTraceback(PyObject *, PyObject *) -> int
PyExceptionClass_Name(PyObject *) -> const char *
PyFile_FromFd(int, const char *, const char *, int, const char *, const char *, const char *, int) -> PyObject *
PyFile_GetLine(PyObject *, int) -> PyObject *
PyFile_WriteObject(PyObject *, PyObject *, int) -> int
PyFile_WriteString(const char *, PyObject *) -> int
PyFloat_AsDouble(PyObject *) -> double
PyFloat_FromDouble(double) -> PyObject *
PyFloat_FromString(PyObject *) -> PyObject *
PyFloat_GetInfo() -> PyObject *
PyFloat_GetMax() -> double
PyFloat_GetMin() -> double
PyFrame_GetCode(PyFrameObject *) -> PyCodeObject *
PyFrame_GetLineNumber(PyFrameObject *) -> int
PyFrozenSet_New(PyObject *) -> PyObject *
PyGC_Collect() -> Py_ssize_t
PyGC_Disable() -> int
PyGC_Enable() -> int
PyGC_IsEnabled() -> int
PyGILState_Ensure() -> PyGILState_STATE
PyGILState_GetThisThreadState() -> PyThreadState *
PyGILState_Release(PyGILState_STATE) -> void
PyImport_AddModule(const char *) -> PyObject *
PyImport_AddModuleObject(PyObject *) -> PyObject *
PyImport_AddModuleRef(const char *) -> PyObject *
PyImport_AppendInittab(const char *, PyObject * (*)(void)) -> int
PyImport_ExecCodeModule(const char *, PyObject *) -> PyObject *
PyImport_ExecCodeModuleEx(const char *, PyObject *, const char *) -> PyObject *
PyImport_ExecCodeModuleObject(PyObject *, PyObject *, PyObject *, PyObject *) -> PyObject *
PyImport_ExecCodeModuleWithPathnames(const char *, PyObject *, const char *, const char *) -> PyObject *
PyImport_GetImporter(PyObject *) -> PyObject *
PyImport_GetMagicNumber() -> long
PyImport_GetMagicTag() -> const char *
PyImport_GetModule(PyObject *) -> PyObject *
PyImport_GetModuleDict() -> PyObject *
PyImport_Import(PyObject *) -> PyObject *
PyImport_ImportFrozenModule(const char *) -> int
PyImport_ImportFrozenModuleObject(PyObject *) -> int
PyImport_ImportModule(const char *) -> PyObject *
PyImport_ImportModuleLevel(const char *, PyObject *, PyObject *, PyObject *, int) -> PyObject *
PyImport_ImportModuleLevelObject(PyObject *, PyObject *, PyObject *, PyObject *, int) -> PyObject *
PyImport_ImportModuleNoBlock(const char *) -> PyObject *
PyImport_ReloadModule(PyObject *) -> PyObject *
PyIndex_Check(PyObject *) -> int
PyInterpreterState_Clear(PyInterpreterState *) -> void
PyInterpreterState_Delete(PyInterpreterState *) -> void
PyInterpreterState_Get() -> PyInterpreterState *
PyInterpreterState_GetDict(PyInterpreterState *) -> PyObject *
PyInterpreterState_GetID(PyInterpreterState *) -> int64_t
PyInterpreterState_New() -> PyInterpreterState *
PyIter_Check(PyObject *) -> int
PyIter_Next(PyObject *) -> PyObject *
PyIter_NextItem(PyObject *, PyObject **) -> int
PyIter_Send(PyObject *, PyObject *, PyObject **) -> PySendResult
PyList_Append(PyObject *, PyObject *) -> int
PyList_AsTuple(PyObject *) -> PyObject *
PyList_GetItem(PyObject *, Py_ssize_t) -> PyObject *
PyList_GetItemRef(PyObject *, Py_ssize_t) -> PyObject *
PyList_GetSlice(PyObject *, Py_ssize_t, Py_ssize_t) -> PyObject *
PyList_Insert(PyObject *, Py_ssize_t, PyObject *) -> int
PyList_New(Py_ssize_t) -> PyObject *
PyList_Reverse(PyObject *) -> int
PyList_SetItem(PyObject *, Py_ssize_t, PyObject *) -> int
PyList_SetSlice(PyObject *, Py_ssize_t, Py_ssize_t, PyObject *) -> int
PyList_Size(PyObject *) -> Py_ssize_t
PyList_Sort(PyObject *) -> int
PyLong_AsDouble(PyObject *) -> double
PyLong_AsInt(PyObject *) -> int
PyLong_AsInt32(PyObject *, int32_t *) -> int
PyLong_AsInt64(PyObject *, int64_t *) -> int
PyLong_AsLong(PyObject *) -> long
PyLong_AsLongAndOverflow(PyObject *, int *) -> long
PyLong_AsLongLong(PyObject *) -> long long
PyLong_AsLongLongAndOverflow(PyObject *, int *) -> long long
PyLong_AsNativeBytes(PyObject *, void *, Py_ssize_t, int) -> Py_ssize_t
PyLong_AsSize_t(PyObject *) -> size_t
PyLong_AsSsize_t(PyObject *) -> Py_ssize_t
PyLong_AsUInt32(PyObject *, uint32_t *) -> int
PyLong_AsUInt64(PyObject *, uint64_t *) -> int
PyLong_AsUnsignedLong(PyObject *) -> unsigned long
PyLong_AsUnsignedLongLong(PyObject *) -> unsigned long long
PyLong_AsUnsignedLongLongMask(PyObject *) -> unsigned long long
PyLong_AsUnsignedLongMask(PyObject *) -> unsigned long
PyLong_AsVoidPtr(PyObject *) -> void *
PyLong_Export(PyObject *, PyLongExport *) -> int
PyLong_FreeExport(PyLongExport *) -> void
PyLong_FromDouble(double) -> PyObject *
PyLong_FromInt32(int32_t) -> PyObject *
PyLong_FromInt64(int64_t) -> PyObject *
PyLong_FromLong(long) -> PyObject *
PyLong_FromLongLong(long long) -> PyObject *
PyLong_FromNativeBytes(const void *, size_t, int) -> PyObject *
PyLong_FromSize_t(size_t) -> PyObject *
PyLong_FromSsize_t(Py_ssize_t) -> PyObject *
PyLong_FromString(const char *, char **, int) -> PyObject *
PyLong_FromUInt32(uint32_t) -> PyObject *
PyLong_FromUInt64(uint64_t) -> PyObject *
PyLong_FromUnsignedLong(unsigned long) -> PyObject *
PyLong_FromUnsignedLongLong(unsigned long long) -> PyObject *
PyLong_FromUnsignedNativeBytes(const void *, size_t, int) -> PyObject *
PyLong_FromVoidPtr(void *) -> PyObject *
PyLong_GetInfo() -> PyObject *
PyLong_GetNativeLayout() -> const PyLongLayout *
PyLongWriter_Create(int, Py_ssize_t, void **) -> PyLongWriter *
PyLongWriter_Discard(PyLongWriter *) -> void
PyLongWriter_Finish(PyLongWriter *) -> PyObject *
PyMapping_Check(PyObject *) -> int
PyMapping_GetItemString(PyObject *, const char *) -> PyObject *
PyMapping_GetOptionalItem(PyObject *, PyObject *, PyObject **) -> int
PyMapping_GetOptionalItemString(PyObject *, const char *, PyObject **) -> int
PyMapping_HasKey(PyObject *, PyObject *) -> int
PyMapping_HasKeyString(PyObject *, const char *) -> int
PyMapping_HasKeyStringWithError(PyObject *, const char *) -> int
PyMapping_HasKeyWithError(PyObject *, PyObject *) -> int
PyMapping_Items(PyObject *) -> PyObject *
PyMapping_Keys(PyObject *) -> PyObject *
PyMapping_Length(PyObject *) -> Py_ssize_t
PyMapping_SetItemString(PyObject *, const char *, PyObject *) -> int
PyMapping_Size(PyObject *) -> Py_ssize_t
PyMapping_Values(PyObject *) -> PyObject *
PyMarshal_ReadObjectFromString(const char *, Py_ssize_t) -> PyObject *
PyMarshal_WriteObjectToString(PyObject *, int) -> PyObject *
PyMem_Calloc(size_t, size_t) -> void *
PyMem_Free(void *) -> void
PyMem_Malloc(size_t) -> void *
PyMem_RawCalloc(size_t, size_t) -> void *
PyMem_RawFree(void *) -> void
PyMem_RawMalloc(size_t) -> void *
PyMem_RawRealloc(void *, size_t) -> void *
PyMem_Realloc(void *, size_t) -> void *
PyMember_GetOne(const char *, PyMemberDef *) -> PyObject *
PyMember_SetOne(char *, PyMemberDef *, PyObject *) -> int
PyMemoryView_FromBuffer(const Py_buffer *) -> PyObject *
PyMemoryView_FromMemory(char *, Py_ssize_t, int) -> PyObject *
PyMemoryView_FromObject(PyObject *) -> PyObject *
PyMemoryView_GetContiguous(PyObject *, int, char) -> PyObject *
PyModule_Add(PyObject *, const char *, PyObject *) -> int
PyModule_AddFunctions(PyObject *, PyMethodDef *) -> int
PyModule_AddIntConstant(PyObject *, const char *, long) -> int
PyModule_AddObject(PyObject *, const char *, PyObject *) -> int
PyModule_AddObjectRef(PyObject *, const char *, PyObject *) -> int
PyModule_AddStringConstant(PyObject *, const char *, const char *) -> int
PyModule_AddType(PyObject *, PyTypeObject *) -> int
PyModule_Create2(PyModuleDef *, int) -> PyObject *
PyModule_Exec(PyObject *) -> int
PyModule_ExecDef(PyObject *, PyModuleDef *) -> int
PyModule_FromDefAndSpec2(PyModuleDef *, PyObject *, int) -> PyObject *
PyModule_FromSlotsAndSpec(const PyModuleDef_Slot *, PyObject *) -> PyObject *
PyModule_GetDef(PyObject *) -> PyModuleDef *
PyModule_GetDict(PyObject *) -> PyObject *
PyModule_GetFilename(PyObject *) -> const char *
PyModule_GetFilenameObject(PyObject *) -> PyObject *
PyModule_GetName(PyObject *) -> const char *
PyModule_GetNameObject(PyObject *) -> PyObject *
PyModule_GetState(PyObject *) -> void *
PyModule_GetStateSize(PyObject *, Py_ssize_t *) -> int
PyModule_GetToken(PyObject *, void **) -> int
PyModule_New(const char *) -> PyObject *
PyModule_NewObject(PyObject *) -> PyObject *
PyModule_SetDocString(PyObject *, const char *) -> int
PyModuleDef_Init(PyModuleDef *) -> PyObject *
PyNumber_Absolute(PyObject *) -> PyObject *
PyNumber_Add(PyObject *, PyObject *) -> PyObject *
PyNumber_And(PyObject *, PyObject *) -> PyObject *
PyNumber_AsSsize_t(PyObject *, PyObject *) -> Py_ssize_t
PyNumber_Check(PyObject *) -> int
PyNumber_Divmod(PyObject *, PyObject *) -> PyObject *
PyNumber_Float(PyObject *) -> PyObject *
PyNumber_FloorDivide(PyObject *, PyObject *) -> PyObject *
PyNumber_Index(PyObject *) -> PyObject *
PyNumber_InPlaceAdd(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceAnd(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceFloorDivide(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceLshift(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceMatrixMultiply(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceMultiply(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceOr(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlacePower(PyObject *, PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceRemainder(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceRshift(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceSubtract(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceTrueDivide(PyObject *, PyObject *) -> PyObject *
PyNumber_InPlaceXor(PyObject *, PyObject *) -> PyObject *
PyNumber_Invert(PyObject *) -> PyObject *
PyNumber_Long(PyObject *) -> PyObject *
PyNumber_Lshift(PyObject *, PyObject *) -> PyObject *
PyNumber_MatrixMultiply(PyObject *, PyObject *) -> PyObject *
PyNumber_Multiply(PyObject *, PyObject *) -> PyObject *
PyNumber_Negative(PyObject *) -> PyObject *
PyNumber_Or(PyObject *, PyObject *) -> PyObject *
PyNumber_Positive(PyObject *) -> PyObject *
PyNumber_Power(PyObject *, PyObject *, PyObject *) -> PyObject *
PyNumber_Remainder(PyObject *, PyObject *) -> PyObject *
PyNumber_Rshift(PyObject *, PyObject *) -> PyObject *
PyNumber_Subtract(PyObject *, PyObject *) -> PyObject *
PyNumber_ToBase(PyObject *, int) -> PyObject *
PyNumber_TrueDivide(PyObject *, PyObject *) -> PyObject *
PyNumber_Xor(PyObject *, PyObject *) -> PyObject *
PyObject_AsCharBuffer(PyObject *, const char **, Py_ssize_t *) -> int
PyObject_ASCII(PyObject *) -> PyObject *
PyObject_AsFileDescriptor(PyObject *) -> int
PyObject_AsReadBuffer(PyObject *, const void **, Py_ssize_t *) -> int
PyObject_AsWriteBuffer(PyObject *, void **, Py_ssize_t *) -> int
PyObject_Bytes(PyObject *) -> PyObject *
PyObject_Call(PyObject *, PyObject *, PyObject *) -> PyObject *
PyObject_CallFunction(PyObject *, const char *, ...) -> PyObject *
PyObject_CallFunctionObjArgs(PyObject *, ...) -> PyObject *
PyObject_CallMethod(PyObject *, const char *, const char *, ...) -> PyObject *
PyObject_CallMethodObjArgs(PyObject *, PyObject *, ...) -> PyObject *
PyObject_CallNoArgs(PyObject *) -> PyObject *
PyObject_CallObject(PyObject *, PyObject *) -> PyObject *
PyObject_Calloc(size_t, size_t) -> void *
PyObject_CheckBuffer(PyObject *) -> int
PyObject_CheckReadBuffer(PyObject *) -> int
PyObject_ClearWeakRefs(PyObject *) -> void
PyObject_CopyData(PyObject *, PyObject *) -> int
PyObject_DelAttr(PyObject *, PyObject *) -> int
PyObject_DelAttrString(PyObject *, const char *) -> int
PyObject_DelItem(PyObject *, PyObject *) -> int
PyObject_DelItemString(PyObject *, const char *) -> int
PyObject_Dir(PyObject *) -> PyObject *
PyObject_Format(PyObject *, PyObject *) -> PyObject *
PyObject_Free(void *) -> void
PyObject_GC_Del(void *) -> void
PyObject_GC_IsFinalized(PyObject *) -> int
PyObject_GC_IsTracked(PyObject *) -> int
PyObject_GC_Track(void *) -> void
PyObject_GC_UnTrack(void *) -> void
PyObject_GenericGetAttr(PyObject *, PyObject *) -> PyObject *
PyObject_GenericGetDict(PyObject *, void *) -> PyObject *
PyObject_GenericSetAttr(PyObject *, PyObject *, PyObject *) -> int
PyObject_GenericSetDict(PyObject *, PyObject *, void *) -> int
PyObject_GetAIter(PyObject *) -> PyObject *
PyObject_GetAttr(PyObject *, PyObject *) -> PyObject *
PyObject_GetAttrString(PyObject *, const char *) -> PyObject *
PyObject_GetBuffer(PyObject *, Py_buffer *, int) -> int
PyObject_GetItem(PyObject *, PyObject *) -> PyObject *
PyObject_GetIter(PyObject *) -> PyObject *
PyObject_GetOptionalAttr(PyObject *, PyObject *, PyObject **) -> int
PyObject_GetOptionalAttrString(PyObject *, const char *, PyObject **) -> int
PyObject_GetTypeData(PyObject *, PyTypeObject *) -> void *
PyObject_HasAttr(PyObject *, PyObject *) -> int
PyObject_HasAttrString(PyObject *, const char *) -> int
PyObject_HasAttrStringWithError(PyObject *, const char *) -> int
PyObject_HasAttrWithError(PyObject *, PyObject *) -> int
PyObject_Hash(PyObject *) -> Py_hash_t
PyObject_HashNotImplemented(PyObject *) -> Py_hash_t
PyObject_Init(PyObject *, PyTypeObject *) -> PyObject *
PyObject_InitVar(PyVarObject *, PyTypeObject *, Py_ssize_t) -> PyVarObject *
PyObject_IsInstance(PyObject *, PyObject *) -> int
PyObject_IsSubclass(PyObject *, PyObject *) -> int
PyObject_IsTrue(PyObject *) -> int
PyObject_Length(PyObject *) -> Py_ssize_t
PyObject_Malloc(size_t) -> void *
PyObject_Not(PyObject *) -> int
PyObject_Realloc(void *, size_t) -> void *
PyObject_Repr(PyObject *) -> PyObject *
PyObject_RichCompare(PyObject *, PyObject *, int) -> PyObject *
PyObject_RichCompareBool(PyObject *, PyObject *, int) -> int
PyObject_SelfIter(PyObject *) -> PyObject *
PyObject_SetAttr(PyObject *, PyObject *, PyObject *) -> int
PyObject_SetAttrString(PyObject *, const char *, PyObject *) -> int
PyObject_SetItem(PyObject *, PyObject *, PyObject *) -> int
PyObject_Size(PyObject *) -> Py_ssize_t
PyObject_Str(PyObject *) -> PyObject *
PyObject_Type(PyObject *) -> PyObject *
PyObject_Vectorcall(PyObject *, PyObject * const *, size_t, PyObject *) -> PyObject *
PyObject_VectorcallMethod(PyObject *, PyObject * const *, size_t, PyObject *) -> PyObject *
PyOS_AfterFork() -> void
PyOS_AfterFork_Child() -> void
PyOS_AfterFork_Parent() -> void
PyOS_BeforeFork() -> void
PyOS_CheckStack() -> int
PyOS_double_to_string(double, char, int, int, int *) -> char *
PyOS_FSPath(PyObject *) -> PyObject *
PyOS_getsig(int) -> PyOS_sighandler_t
PyOS_InterruptOccurred() -> int
PyOS_mystricmp(const char *, const char *) -> int
PyOS_mystrnicmp(const char *, const char *, Py_ssize_t) -> int
PyOS_setsig(int, PyOS_sighandler_t) -> PyOS_sighandler_t
PyOS_snprintf(char *, size_t, const char *, ...) -> int
PyOS_string_to_double(const char *, char **, PyObject *) -> double
PyOS_strtol(const char *, char **, int) -> long
PyOS_strtoul(const char *, char **, int) -> unsigned long
PyOS_vsnprintf(char *, size_t, const char *, va_list) -> int
PySeqIter_New(PyObject *) -> PyObject *
PySequence_Check(PyObject *) -> int
PySequence_Concat(PyObject *, PyObject *) -> PyObject *
PySequence_Contains(PyObject *, PyObject *) -> int
PySequence_Count(PyObject *, PyObject *) -> Py_ssize_t
PySequence_DelItem(PyObject *, Py_ssize_t) -> int
PySequence_DelSlice(PyObject *, Py_ssize_t, Py_ssize_t) -> int
PySequence_Fast(PyObject *, const char *) -> PyObject *
PySequence_GetItem(PyObject *, Py_ssize_t) -> PyObject *
PySequence_GetSlice(PyObject *, Py_ssize_t, Py_ssize_t) -> PyObject *
PySequence_In(PyObject *, PyObject *) -> int
PySequence_Index(PyObject *, PyObject *) -> Py_ssize_t
PySequence_InPlaceConcat(PyObject *, PyObject *) -> PyObject *
PySequence_InPlaceRepeat(PyObject *, Py_ssize_t) -> PyObject *
PySequence_Length(PyObject *) -> Py_ssize_t
PySequence_List(PyObject *) -> PyObject *
PySequence_Repeat(PyObject *, Py_ssize_t) -> PyObject *
PySequence_SetItem(PyObject *, Py_ssize_t, PyObject *) -> int
PySequence_SetSlice(PyObject *, Py_ssize_t, Py_ssize_t, PyObject *) -> int
PySequence_Size(PyObject *) -> Py_ssize_t
PySequence_Tuple(PyObject *) -> PyObject *
PySet_Add(PyObject *, PyObject *) -> int
PySet_Clear(PyObject *) -> int
PySet_Contains(PyObject *, PyObject *) -> int
PySet_Discard(PyObject *, PyObject *) -> int
PySet_New(PyObject *) -> PyObject *
PySet_Pop(PyObject *) -> PyObject *
PySet_Size(PyObject *) -> Py_ssize_t
PySlice_AdjustIndices(Py_ssize_t, Py_ssize_t *, Py_ssize_t *, Py_ssize_t) -> Py_ssize_t
PySlice_GetIndices(PyObject *, Py_ssize_t, Py_ssize_t *, Py_ssize_t *, Py_ssize_t *) -> int
PySlice_GetIndicesEx(PyObject *, Py_ssize_t, Py_ssize_t *, Py_ssize_t *, Py_ssize_t *, Py_ssize_t *) -> int
PySlice_New(PyObject *, PyObject *, PyObject *) -> PyObject *
PySlice_Unpack(PyObject *, Py_ssize_t *, Py_ssize_t *, Py_ssize_t *) -> int
PyState_AddModule(PyObject *, PyModuleDef *) -> int
PyState_FindModule(PyModuleDef *) -> PyObject *
PyState_RemoveModule(PyModuleDef *) -> int
PyStructSequence_GetItem(PyObject *, Py_ssize_t) -> PyObject *
PyStructSequence_New(PyTypeObject *) -> PyObject *
PyStructSequence_NewType(PyStructSequence_Desc *) -> PyTypeObject *
PyStructSequence_SetItem(PyObject *, Py_ssize_t, PyObject *) -> void
PySys_AddWarnOption(const wchar_t *) -> void
PySys_AddWarnOptionUnicode(PyObject *) -> void
PySys_AddXOption(const wchar_t *) -> void
PySys_Audit(const char *, const char *, ...) -> int
PySys_AuditTuple(const char *, PyObject *) -> int
PySys_FormatStderr(const char *, ...) -> void
PySys_FormatStdout(const char *, ...) -> void
PySys_GetAttr(PyObject *) -> PyObject *
PySys_GetAttrString(const char *) -> PyObject *
PySys_GetObject(const char *) -> PyObject *
PySys_GetOptionalAttr(PyObject *, PyObject **) -> int
PySys_GetOptionalAttrString(const char *, PyObject **) -> int
PySys_GetXOptions() -> PyObject *
PySys_HasWarnOptions() -> int
PySys_ResetWarnOptions() -> void
PySys_SetArgv(int, wchar_t **) -> void
PySys_SetArgvEx(int, wchar_t **, int) -> void
PySys_SetObject(const char *, PyObject *) -> int
PySys_SetPath(const wchar_t *) -> void
PySys_WriteStderr(const char *, ...) -> void
PySys_WriteStdout(const char *, ...) -> void
PyThread_acquire_lock(PyThread_type_lock, int) -> int
PyThread_acquire_lock_timed(PyThread_type_lock, PY_TIMEOUT_T, int) -> PyLockStatus
PyThread_allocate_lock() -> PyThread_type_lock
PyThread_create_key() -> int
PyThread_delete_key(int) -> void
PyThread_delete_key_value(int) -> void
PyThread_exit_thread() -> void
PyThread_free_lock(PyThread_type_lock) -> void
PyThread_get_key_value(int) -> void *
PyThread_get_stacksize() -> size_t
PyThread_get_thread_ident() -> unsigned long
PyThread_get_thread_native_id() -> unsigned long
PyThread_GetInfo() -> PyObject *
PyThread_init_thread() -> void
PyThread_ReInitTLS() -> void
PyThread_release_lock(PyThread_type_lock) -> void
PyThread_set_key_value(int, void *) -> int
PyThread_set_stacksize(size_t) -> int
PyThread_start_new_thread(void (*)(void *), void *) -> unsigned long
PyThread_tss_alloc() -> Py_tss_t *
PyThread_tss_create(Py_tss_t *) -> int
PyThread_tss_delete(Py_tss_t *) -> void
PyThread_tss_free(Py_tss_t *) -> void
PyThread_tss_get(Py_tss_t *) -> void *
PyThread_tss_is_created(Py_tss_t *) -> int
PyThread_tss_set(Py_tss_t *, void *) -> int
PyThreadState_Clear(PyThreadState *) -> void
PyThreadState_Delete(PyThreadState *) -> void
PyThreadState_DeleteCurrent() -> void
PyThreadState_Get() -> PyThreadState *
PyThreadState_GetDict() -> PyObject *
PyThreadState_GetFrame(PyThreadState *) -> PyFrameObject *
PyThreadState_GetID(PyThreadState *) -> uint64_t
PyThreadState_GetInterpreter(PyThreadState *) -> PyInterpreterState *
PyThreadState_New(PyInterpreterState *) -> PyThreadState *
PyThreadState_SetAsyncExc(unsigned long, PyObject *) -> int
PyThreadState_Swap(PyThreadState *) -> PyThreadState *
PyTraceBack_Here(PyFrameObject *) -> int
PyTraceBack_Print(PyObject *, PyObject *) -> int
PyTuple_GetItem(PyObject *, Py_ssize_t) -> PyObject *
PyTuple_GetSlice(PyObject *, Py_ssize_t, Py_ssize_t) -> PyObject *
PyTuple_New(Py_ssize_t) -> PyObject *
PyTuple_Pack(Py_ssize_t, ...) -> PyObject *
PyTuple_SetItem(PyObject *, Py_ssize_t, PyObject *) -> int
PyTuple_Size(PyObject *) -> Py_ssize_t
PyType_ClearCache() -> unsigned int
PyType_Freeze(PyTypeObject *) -> int
PyType_FromMetaclass(PyTypeObject *, PyObject *, PyType_Spec *, PyObject *) -> PyObject *
PyType_FromModuleAndSpec(PyObject *, PyType_Spec *, PyObject *) -> PyObject *
PyType_FromSpec(PyType_Spec *) -> PyObject *
PyType_FromSpecWithBases(PyType_Spec *, PyObject *) -> PyObject *
PyType_GenericAlloc(PyTypeObject *, Py_ssize_t) -> PyObject *
PyType_GenericNew(PyTypeObject *, PyObject *, PyObject *) -> PyObject *
PyType_GetBaseByToken(PyTypeObject *, void *, PyTypeObject **) -> int
PyType_GetFlags(PyTypeObject *) -> unsigned long
PyType_GetFullyQualifiedName(PyTypeObject *) -> PyObject *
PyType_GetModule(PyTypeObject *) -> PyObject *
PyType_GetModuleByDef(PyTypeObject *, PyModuleDef *) -> PyObject *
PyType_GetModuleByToken(PyTypeObject *, const void *) -> PyObject *
PyType_GetModuleName(PyTypeObject *) -> PyObject *
PyType_GetModuleState(PyTypeObject *) -> void *
PyType_GetName(PyTypeObject *) -> PyObject *
PyType_GetQualName(PyTypeObject *) -> PyObject *
PyType_GetSlot(PyTypeObject *, int) -> void *
PyType_GetTypeDataSize(PyTypeObject *) -> Py_ssize_t
PyType_IsSubtype(PyTypeObject *, PyTypeObject *) -> int
PyType_Modified(PyTypeObject *) -> void
PyType_Ready(PyTypeObject *) -> int
PyUnicode_Append(PyObject **, PyObject *) -> void
PyUnicode_AppendAndDel(PyObject **, PyObject *) -> void
PyUnicode_AsASCIIString(PyObject *) -> PyObject *
PyUnicode_AsCharmapString(PyObject *, PyObject *) -> PyObject *
PyUnicode_AsDecodedObject(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_AsDecodedUnicode(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_AsEncodedObject(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_AsEncodedString(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_AsEncodedUnicode(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_AsLatin1String(PyObject *) -> PyObject *
PyUnicode_AsMBCSString(PyObject *) -> PyObject *
PyUnicode_AsRawUnicodeEscapeString(PyObject *) -> PyObject *
PyUnicode_AsUCS4(PyObject *, Py_UCS4 *, Py_ssize_t, int) -> Py_UCS4 *
PyUnicode_AsUCS4Copy(PyObject *) -> Py_UCS4 *
PyUnicode_AsUnicodeEscapeString(PyObject *) -> PyObject *
PyUnicode_AsUTF16String(PyObject *) -> PyObject *
PyUnicode_AsUTF32String(PyObject *) -> PyObject *
PyUnicode_AsUTF8AndSize(PyObject *, Py_ssize_t *) -> const char *
PyUnicode_AsUTF8String(PyObject *) -> PyObject *
PyUnicode_AsWideChar(PyObject *, wchar_t *, Py_ssize_t) -> Py_ssize_t
PyUnicode_AsWideCharString(PyObject *, Py_ssize_t *) -> wchar_t *
PyUnicode_BuildEncodingMap(PyObject *) -> PyObject *
PyUnicode_Compare(PyObject *, PyObject *) -> int
PyUnicode_CompareWithASCIIString(PyObject *, const char *) -> int
PyUnicode_Concat(PyObject *, PyObject *) -> PyObject *
PyUnicode_Contains(PyObject *, PyObject *) -> int
PyUnicode_Count(PyObject *, PyObject *, Py_ssize_t, Py_ssize_t) -> Py_ssize_t
PyUnicode_Decode(const char *, Py_ssize_t, const char *, const char *) -> PyObject *
PyUnicode_DecodeASCII(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeCharmap(const char *, Py_ssize_t, PyObject *, const char *) -> PyObject *
PyUnicode_DecodeCodePageStateful(int, const char *, Py_ssize_t, const char *, Py_ssize_t *) -> PyObject *
PyUnicode_DecodeFSDefault(const char *) -> PyObject *
PyUnicode_DecodeFSDefaultAndSize(const char *, Py_ssize_t) -> PyObject *
PyUnicode_DecodeLatin1(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeLocale(const char *, const char *) -> PyObject *
PyUnicode_DecodeLocaleAndSize(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeMBCS(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeMBCSStateful(const char *, Py_ssize_t, const char *, Py_ssize_t *) -> PyObject *
PyUnicode_DecodeRawUnicodeEscape(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeUnicodeEscape(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeUTF16(const char *, Py_ssize_t, const char *, int *) -> PyObject *
PyUnicode_DecodeUTF16Stateful(const char *, Py_ssize_t, const char *, int *, Py_ssize_t *) -> PyObject *
PyUnicode_DecodeUTF32(const char *, Py_ssize_t, const char *, int *) -> PyObject *
PyUnicode_DecodeUTF32Stateful(const char *, Py_ssize_t, const char *, int *, Py_ssize_t *) -> PyObject *
PyUnicode_DecodeUTF7(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeUTF7Stateful(const char *, Py_ssize_t, const char *, Py_ssize_t *) -> PyObject *
PyUnicode_DecodeUTF8(const char *, Py_ssize_t, const char *) -> PyObject *
PyUnicode_DecodeUTF8Stateful(const char *, Py_ssize_t, const char *, Py_ssize_t *) -> PyObject *
PyUnicode_EncodeCodePage(int, PyObject *, const char *) -> PyObject *
PyUnicode_EncodeFSDefault(PyObject *) -> PyObject *
PyUnicode_EncodeLocale(PyObject *, const char *) -> PyObject *
PyUnicode_Equal(PyObject *, PyObject *) -> int
PyUnicode_EqualToUTF8(PyObject *, const char *) -> int
PyUnicode_EqualToUTF8AndSize(PyObject *, const char *, Py_ssize_t) -> int
PyUnicode_Find(PyObject *, PyObject *, Py_ssize_t, Py_ssize_t, int) -> Py_ssize_t
PyUnicode_FindChar(PyObject *, Py_UCS4, Py_ssize_t, Py_ssize_t, int) -> Py_ssize_t
PyUnicode_Format(PyObject *, PyObject *) -> PyObject *
PyUnicode_FromEncodedObject(PyObject *, const char *, const char *) -> PyObject *
PyUnicode_FromFormat(const char *, ...) -> PyObject *
PyUnicode_FromFormatV(const char *, va_list) -> PyObject *
PyUnicode_FromObject(PyObject *) -> PyObject *
PyUnicode_FromOrdinal(int) -> PyObject *
PyUnicode_FromString(const char *) -> PyObject *
PyUnicode_FromStringAndSize(const char *, Py_ssize_t) -> PyObject *
PyUnicode_FromWideChar(const wchar_t *, Py_ssize_t) -> PyObject *
PyUnicode_FSConverter(PyObject *, void *) -> int
PyUnicode_FSDecoder(PyObject *, void *) -> int
PyUnicode_GetDefaultEncoding() -> const char *
PyUnicode_GetLength(PyObject *) -> Py_ssize_t
PyUnicode_GetSize(PyObject *) -> Py_ssize_t
PyUnicode_InternFromString(const char *) -> PyObject *
PyUnicode_InternImmortal(PyObject **) -> void
PyUnicode_InternInPlace(PyObject **) -> void
PyUnicode_IsIdentifier(PyObject *) -> int
PyUnicode_Join(PyObject *, PyObject *) -> PyObject *
PyUnicode_Partition(PyObject *, PyObject *) -> PyObject *
PyUnicode_ReadChar(PyObject *, Py_ssize_t) -> Py_UCS4
PyUnicode_Replace(PyObject *, PyObject *, PyObject *, Py_ssize_t) -> PyObject *
PyUnicode_Resize(PyObject **, Py_ssize_t) -> int
PyUnicode_RichCompare(PyObject *, PyObject *, int) -> PyObject *
PyUnicode_RPartition(PyObject *, PyObject *) -> PyObject *
PyUnicode_RSplit(PyObject *, PyObject *, Py_ssize_t) -> PyObject *
PyUnicode_Split(PyObject *, PyObject *, Py_ssize_t) -> PyObject *
PyUnicode_Splitlines(PyObject *, int) -> PyObject *
PyUnicode_Substring(PyObject *, Py_ssize_t, Py_ssize_t) -> PyObject *
PyUnicode_Tailmatch(PyObject *, PyObject *, Py_ssize_t, Py_ssize_t, int) -> Py_ssize_t
PyUnicode_Translate(PyObject *, PyObject *, const char *) -> PyObject *
PyUnicode_WriteChar(PyObject *, Py_ssize_t, Py_UCS4) -> int
PyUnicodeDecodeError_Create(const char *, const char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const char *) -> PyObject *
PyUnicodeDecodeError_GetEncoding(PyObject *) -> PyObject *
PyUnicodeDecodeError_GetEnd(PyObject *, Py_ssize_t *) -> int
PyUnicodeDecodeError_GetObject(PyObject *) -> PyObject *
PyUnicodeDecodeError_GetReason(PyObject *) -> PyObject *
PyUnicodeDecodeError_GetStart(PyObject *, Py_ssize_t *) -> int
PyUnicodeDecodeError_SetEnd(PyObject *, Py_ssize_t) -> int
PyUnicodeDecodeError_SetReason(PyObject *, const char *) -> int
PyUnicodeDecodeError_SetStart(PyObject *, Py_ssize_t) -> int
PyUnicodeEncodeError_GetEncoding(PyObject *) -> PyObject *
PyUnicodeEncodeError_GetEnd(PyObject *, Py_ssize_t *) -> int
PyUnicodeEncodeError_GetObject(PyObject *) -> PyObject *
PyUnicodeEncodeError_GetReason(PyObject *) -> PyObject *
PyUnicodeEncodeError_GetStart(PyObject *, Py_ssize_t *) -> int
PyUnicodeEncodeError_SetEnd(PyObject *, Py_ssize_t) -> int
PyUnicodeEncodeError_SetReason(PyObject *, const char *) -> int
PyUnicodeEncodeError_SetStart(PyObject *, Py_ssize_t) -> int
PyUnicodeTranslateError_GetEnd(PyObject *, Py_ssize_t *) -> int
PyUnicodeTranslateError_GetObject(PyObject *) -> PyObject *
PyUnicodeTranslateError_GetReason(PyObject *) -> PyObject *
PyUnicodeTranslateError_GetStart(PyObject *, Py_ssize_t *) -> int
PyUnicodeTranslateError_SetEnd(PyObject *, Py_ssize_t) -> int
PyUnicodeTranslateError_SetReason(PyObject *, const char *) -> int
PyUnicodeTranslateError_SetStart(PyObject *, Py_ssize_t) -> int
PyVectorcall_Call(PyObject *, PyObject *, PyObject *) -> PyObject *
PyVectorcall_NARGS(size_t) -> Py_ssize_t
PyWeakref_GetObject(PyObject *) -> PyObject *
PyWeakref_GetRef(PyObject *, PyObject **) -> int
PyWeakref_NewProxy(PyObject *, PyObject *) -> PyObject *
PyWeakref_NewRef(PyObject *, PyObject *) -> PyObject *
PyWrapper_New(PyObject *, PyObject *) -> PyObject *
"""

#: The stable-ABI data symbols of python3.def (objects and type objects).
_DATA = frozenset(
    """
    _Py_EllipsisObject _Py_FalseStruct _Py_NoneStruct _Py_NotImplementedStruct _Py_RefTotal
    _Py_SwappedOp _Py_TrueStruct _PyWeakref_CallableProxyType _PyWeakref_ProxyType
    _PyWeakref_RefType Py_FileSystemDefaultEncodeErrors Py_FileSystemDefaultEncoding
    Py_GenericAliasType Py_HasFileSystemDefaultEncoding Py_UTF8Mode Py_Version PyBaseObject_Type
    PyBool_Type PyByteArray_Type PyByteArrayIter_Type PyBytes_Type PyBytesIter_Type PyCallIter_Type
    PyCapsule_Type PyCFunction_Type PyClassMethodDescr_Type PyComplex_Type PyDict_Type
    PyDictItems_Type PyDictIterItem_Type PyDictIterKey_Type PyDictIterValue_Type PyDictKeys_Type
    PyDictProxy_Type PyDictRevIterItem_Type PyDictRevIterKey_Type PyDictRevIterValue_Type
    PyDictValues_Type PyEllipsis_Type PyEnum_Type PyExc_ArithmeticError PyExc_AssertionError
    PyExc_AttributeError PyExc_BaseException PyExc_BaseExceptionGroup PyExc_BlockingIOError
    PyExc_BrokenPipeError PyExc_BufferError PyExc_BytesWarning PyExc_ChildProcessError
    PyExc_ConnectionAbortedError PyExc_ConnectionError PyExc_ConnectionRefusedError
    PyExc_ConnectionResetError PyExc_DeprecationWarning PyExc_EncodingWarning PyExc_EnvironmentError
    PyExc_EOFError PyExc_Exception PyExc_FileExistsError PyExc_FileNotFoundError
    PyExc_FloatingPointError PyExc_FutureWarning PyExc_GeneratorExit PyExc_ImportError
    PyExc_ImportWarning PyExc_IndentationError PyExc_IndexError PyExc_InterruptedError PyExc_IOError
    PyExc_IsADirectoryError PyExc_KeyboardInterrupt PyExc_KeyError PyExc_LookupError
    PyExc_MemoryError PyExc_ModuleNotFoundError PyExc_NameError PyExc_NotADirectoryError
    PyExc_NotImplementedError PyExc_OSError PyExc_OverflowError PyExc_PendingDeprecationWarning
    PyExc_PermissionError PyExc_ProcessLookupError PyExc_RecursionError PyExc_ReferenceError
    PyExc_ResourceWarning PyExc_RuntimeError PyExc_RuntimeWarning PyExc_StopAsyncIteration
    PyExc_StopIteration PyExc_SyntaxError PyExc_SyntaxWarning PyExc_SystemError PyExc_SystemExit
    PyExc_TabError PyExc_TimeoutError PyExc_TypeError PyExc_UnboundLocalError
    PyExc_UnicodeDecodeError PyExc_UnicodeEncodeError PyExc_UnicodeError PyExc_UnicodeTranslateError
    PyExc_UnicodeWarning PyExc_UserWarning PyExc_ValueError PyExc_Warning PyExc_WindowsError
    PyExc_ZeroDivisionError PyFilter_Type PyFloat_Type PyFrozenSet_Type PyGetSetDescr_Type
    PyList_Type PyListIter_Type PyListRevIter_Type PyLong_Type PyLongRangeIter_Type PyMap_Type
    PyMemberDescr_Type PyMemoryView_Type PyMethodDescr_Type PyModule_Type PyModuleDef_Type
    PyOS_InputHook PyProperty_Type PyRange_Type PyRangeIter_Type PyReversed_Type PySeqIter_Type
    PySet_Type PySetIter_Type PySlice_Type PyStructSequence_UnnamedField PySuper_Type
    PyTraceBack_Type PyTuple_Type PyTupleIter_Type PyType_Type PyUnicode_Type PyUnicodeIter_Type
    PyWrapperDescr_Type PyZip_Type
    """.split()
)


# Parsed at import (~6 ms): a warm runner imports every harness module
# before it forks, so its children find the table made; a cold run imports
# this module only under the Windows model, which uses it at once.
_SIGNATURES: dict[str, Signature] = {sig.name: sig for sig in map(parse_prototype, _PROTOTYPES.strip().splitlines())}
