"""The Windows x64 model: a PE module calls CPython with the Win64
convention and CPython calls the module with System V, so every crossing
goes through a bridge made by :func:`x64.bridge`.

- Import side: each function in the module's import table gets a Win64 ->
  System V thunk (arguments from rcx, rdx, r8, r9 / xmm0-3 by position and
  the stack above the 32-byte shadow space, to System V's registers; rdi,
  rsi and xmm6-15 kept for the Win64 caller). Data imports
  (``PyExc_TypeError``, ``_Py_NoneStruct``) get the interpreter's own
  variable, whose address is what an IAT slot holds on Windows.
- Export side: every function pointer the module hands to CPython
  (``PyInit_<name>``, ``ml_meth`` of each ``PyMethodDef``, ``m_slots``,
  ``m_traverse``/``m_clear``/``m_free``, the slots, methods and getsets of
  types made with ``PyType_FromSpec*``) is replaced by a System V -> Win64
  stub, inside the thunks of the functions that receive those tables,
  before CPython reads them.

What differs per C-API function (argument kinds, ``long`` being 32 bits,
variadic format strings) comes from :mod:`win64_capi` when it is present;
until then the small table below, marked as such, covers what the examples
need, and every other function is bridged as taking integer-class
arguments only (pointers, ``Py_ssize_t``, ``int``), which is exact for them
and for pointer-only variadic calls such as ``PyArg_ParseTuple``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import traceback

from . import memory, x64

try:  # the per-function data, written apart (see the module docstring)
    from . import win64_capi as _capi
except ImportError:  # pragma: no cover - until win64_capi lands
    _capi = None

# Placeholder until win64_capi lands: the functions whose arguments or result
# are not integer-class. name -> (argument kinds, return kind).
_LOCAL_SIGNATURES = {
    "PyFloat_FromDouble": (["f64"], "ptr"),
    "PyFloat_AsDouble": (["ptr"], "f64"),
    "PyLong_FromDouble": (["f64"], "ptr"),
    "PyLong_AsDouble": (["ptr"], "f64"),
    "PyComplex_FromDoubles": (["f64", "f64"], "ptr"),
    "PyComplex_RealAsDouble": (["ptr"], "f64"),
    "PyComplex_ImagAsDouble": (["ptr"], "f64"),
    "PyOS_double_to_string": (["f64", "i32", "i32", "i32", "ptr"], "ptr"),
}

# Integer-class functions are bridged with this many arguments: all four
# registers and the stack slots above them. Extra ones only read the
# caller's frame, which is mapped; the callee ignores them.
GENERIC_ARGS = 16

# The callbacks CPython calls take at most six integer-class arguments
# (METH_METHOD|METH_FASTCALL|METH_KEYWORDS methods take five).
CALLBACK_ARGS = 6


def win64_sources(kinds: list) -> list:
    """Where a Win64 callee finds each argument at its entry: by position,
    rcx/rdx/r8/r9 or xmm0-3, then the stack above the return address and
    the 32-byte shadow space (``rsp+40``, ``rsp+48``, ...)."""
    if _capi is not None and hasattr(_capi, "win64_sources"):
        return _capi.win64_sources(kinds)
    out = []
    for i, kind in enumerate(kinds):
        if i < 4:
            out.append(("xmm", i) if kind in ("f64", "f32") else ("int", x64.WIN64_INT[i]))
        else:
            out.append(("stack", 8 + x64.WIN64_SHADOW + 8 * (i - 4)))
    return out


def sysv_placement(kinds: list, variadic: bool = False):
    """Where a System V callee expects each argument at the call: integer
    class in rdi, rsi, rdx, rcx, r8, r9, floats in xmm0-7, each counted
    apart, the rest on the stack in order. Returns ``(dests, stack bytes,
    al)``, ``al`` being the vector register count (``None`` unless
    variadic)."""
    if _capi is not None and hasattr(_capi, "sysv_placement"):
        return _capi.sysv_placement(kinds, variadic)
    dests = []
    ints = vecs = stack = 0
    for kind in kinds:
        if kind in ("f64", "f32") and vecs < x64.SYSV_XMM:
            dests.append(("xmm", vecs))
            vecs += 1
        elif kind not in ("f64", "f32") and ints < len(x64.SYSV_INT):
            dests.append(("int", x64.SYSV_INT[ints]))
            ints += 1
        else:
            dests.append(("stack", stack))
            stack += 8
    return dests, stack, (vecs if variadic else None)


def signature(name: str):
    """``(argument kinds, return kind, variadic)`` of a C-API function in its
    Windows declaration; integer-class with :data:`GENERIC_ARGS` arguments
    when nothing more is known."""
    if _capi is not None and hasattr(_capi, "signature"):
        sig = _capi.signature(name)
        if sig is not None:
            return sig
    if name in _LOCAL_SIGNATURES:
        args, ret = _LOCAL_SIGNATURES[name]
        return list(args), ret, False
    return ["ptr"] * GENERIC_ARGS, "ptr", True


# Every stub address we made, so a table is never wrapped twice.
_ours = set()
# Callbacks ctypes must keep alive (the thunks hold their addresses).
_keep = []
_callback_stubs = {}


def thunk(name: str, target: int, hook=None) -> int:
    """A Win64 -> System V thunk that calls ``target`` as C-API function ``name``."""
    kinds, _ret, variadic = signature(name)
    sources = win64_sources(kinds)
    dests, stack, al = sysv_placement(kinds, variadic)
    moves = [x64.Move(k, s, d) for k, s, d in zip(kinds, sources, dests)]
    code = x64.bridge(target, moves, stack, save_win64_callee=True, vector_count=al if al is not None else 0, hook=hook)
    (address,) = memory.map_code([code])
    _ours.add(address)
    return address


def callable_from_sysv(target: int) -> int:
    """A System V -> Win64 stub for a function of the module, taking up to
    :data:`CALLBACK_ARGS` integer-class arguments; the same stub for the
    same function."""
    if target in _ours or target == 0:
        return target
    stub = _callback_stubs.get(target)
    if stub is None:
        kinds = ["ptr"] * CALLBACK_ARGS
        sources = [("int", r) for r in x64.SYSV_INT]
        dests = [("int", x64.WIN64_INT[i]) if i < 4 else ("stack", x64.WIN64_SHADOW + 8 * (i - 4)) for i in range(len(kinds))]
        moves = [x64.Move(k, s, d) for k, s, d in zip(kinds, sources, dests)]
        code = x64.bridge(target, moves, x64.WIN64_SHADOW + 8 * (CALLBACK_ARGS - 4), save_win64_callee=False)
        (stub,) = memory.map_code([code])
        _callback_stubs[target] = stub
        _ours.add(stub)
    return stub


def _u64(address: int) -> int:
    return memory.read_u64(address)


def _wrap_at(address: int) -> None:
    """Replaces the function pointer stored at ``address`` with its stub."""
    value = _u64(address)
    if value and value not in _ours:
        memory.patch_u64(address, callable_from_sysv(value))


# PyMethodDef: ml_name, ml_meth, ml_flags (int + padding), ml_doc: 32 bytes.
def rewrite_methods(table: int, single: bool = False) -> None:
    """Wraps ``ml_meth`` of every entry of a ``PyMethodDef`` array (or of
    the one entry when ``single``)."""
    while table and _u64(table):
        _wrap_at(table + 8)
        if single:
            return
        table += 32


# PyModuleDef: PyModuleDef_Base (40 bytes), m_name, m_doc, m_size, m_methods
# (+64), m_slots (+72), m_traverse (+80), m_clear (+88), m_free (+96).
PY_MOD_CREATE, PY_MOD_EXEC = 1, 2


def rewrite_moduledef(definition: int) -> None:
    """Wraps every function a ``PyModuleDef`` hands to CPython."""
    rewrite_methods(_u64(definition + 64))
    slots = _u64(definition + 72)
    while slots and memory.read_i32(slots):
        if memory.read_i32(slots) in (PY_MOD_CREATE, PY_MOD_EXEC):
            _wrap_at(slots + 8)
        slots += 16
    for offset in (80, 88, 96):
        _wrap_at(definition + offset)


# typeslots.h: the slot ids whose value is not a function.
PY_TP_BASE, PY_TP_BASES, PY_TP_DOC, PY_TP_METHODS = 48, 49, 56, 64
PY_TP_MEMBERS, PY_TP_GETSET, PY_TP_TOKEN = 72, 73, 83


def rewrite_type_spec(spec: int) -> None:
    """Wraps every function of a ``PyType_Spec``'s slots (name, basicsize,
    itemsize, flags, then the slots pointer at +24), its methods and the
    getters and setters of its getsets."""
    slots = _u64(spec + 24)
    while slots and memory.read_i32(slots):
        slot = memory.read_i32(slots)
        if slot == PY_TP_METHODS:
            rewrite_methods(_u64(slots + 8))
        elif slot == PY_TP_GETSET:
            getset = _u64(slots + 8)  # name, get, set, doc, closure: 40 bytes
            while getset and _u64(getset):
                _wrap_at(getset + 8)
                _wrap_at(getset + 16)
                getset += 40
        elif slot not in (PY_TP_BASE, PY_TP_BASES, PY_TP_DOC, PY_TP_MEMBERS, PY_TP_TOKEN):
            _wrap_at(slots + 8)
        slots += 16


def _guarded(rewrite):
    """A hook for a thunk: a table the model cannot rewrite would leave
    CPython calling Win64 code with System V registers, so the process stops
    here, saying why, rather than later at random."""

    def hook(first, second):
        try:
            rewrite(first or 0, second or 0)
        except BaseException:
            sys.stderr.write("wheelwright ABI model: cannot rewrite a table the module passed to CPython:\n")
            traceback.print_exc()
            sys.stderr.flush()
            os.abort()

    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(hook)
    _keep.append(callback)
    return ctypes.cast(callback, ctypes.c_void_p).value


# The C-API functions that receive tables of the module's functions, and
# which argument holds the table.
_HOOKS = {
    "PyModule_Create2": lambda a, b: rewrite_moduledef(a),
    "PyModuleDef_Init": lambda a, b: rewrite_moduledef(a),
    "PyModule_FromDefAndSpec2": lambda a, b: rewrite_moduledef(a),
    "PyModule_AddFunctions": lambda a, b: rewrite_methods(b),
    "PyCFunction_New": lambda a, b: rewrite_methods(a, single=True),
    "PyCFunction_NewEx": lambda a, b: rewrite_methods(a, single=True),
    "PyCMethod_New": lambda a, b: rewrite_methods(a, single=True),
    "PyDescr_NewMethod": lambda a, b: rewrite_methods(b, single=True),
    "PyDescr_NewClassMethod": lambda a, b: rewrite_methods(b, single=True),
    "PyType_FromSpec": lambda a, b: rewrite_type_spec(a),
    "PyType_FromSpecWithBases": lambda a, b: rewrite_type_spec(a),
    "PyType_FromModuleAndSpec": lambda a, b: rewrite_type_spec(b),
    "PyType_FromMetaclass": lambda a, b: rewrite_type_spec(b),
}


def resolve_import(imp) -> int:
    """What goes in one import slot of a Windows module: a thunk for a
    function, the interpreter's own variable for data."""
    try:
        address = memory.process_symbol(imp.name)
    except LookupError:
        raise ImportError("the module imports %s from %s, which this interpreter does not provide" % (imp.name, imp.dll)) from None
    if not memory.is_code(address):
        return address
    hook = _HOOKS.get(imp.name)
    return thunk(imp.name, address, hook=_guarded(hook) if hook else None)
