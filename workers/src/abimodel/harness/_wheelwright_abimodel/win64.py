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

What differs per C-API function comes from :mod:`win64_capi`: argument
kinds (floats by position, C ``long`` 32 bits: ``i32``/``u32`` widened the
way a Windows caller's 32-bit value means), variadic calls placed by reading
their format string at call time (:mod:`x64_extra`'s dispatcher picks a
bridge per format, cached), C ``long`` results narrowed as Windows CPython
computes them (:func:`win64_capi.windows_return`), ``l``/``k`` parse units
written as the 4 bytes the module reserved, function pointers the module
passes (destructors, converters) given System V -> Win64 stubs and function
pointers CPython returns (``PyType_GetSlot``) given Win64 -> System V thunks.
A function outside the stable ABI (imported from ``python3X.dll``) is
bridged as taking integer-class arguments only.

The ABI guards (:mod:`guards`) are on every crossing: each System V ->
Win64 stub checks the Win64 callee-saved registers (rbx, rbp, rdi, rsi,
r12-r15, xmm6-15) of the module's function, named after its table entry;
each import checks the stack alignment of the module's call (in front of
the thunk or the variadic dispatcher) and then fills the caller's home
space as a Windows callee may, so a missing shadow space is not silently
forgiven. The tables are walked by the guards' walkers.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
import traceback

from . import guards, memory, x64, x64_extra
from . import win64_capi as capi

# A function the model has no prototype for is bridged with this many
# integer-class arguments: all four registers and the stack slots above
# them. Extra ones only read the caller's frame, which is mapped; the callee
# ignores them.
GENERIC_ARGS = 16

# The callbacks CPython calls take at most six integer-class arguments
# (METH_METHOD|METH_FASTCALL|METH_KEYWORDS methods take five).
CALLBACK_ARGS = 6

# C long results that need the host's value rewritten (the "mask" and "wrap"
# rules keep the low 32 bits, which is what the Win64 caller reads anyway).
_NARROWED = ("checked", "checked_unsigned", "flag", "saturate")

# Every stub address we made, so a table is never wrapped twice.
_ours = set()
# Callbacks ctypes must keep alive (the thunks hold their addresses).
_keep = []
_callback_stubs = {}
# stub -> the module's function it calls (PyType_GetSlot hands it back).
_stub_origin = {}
_generic_thunks = {}


def _abort(what: str) -> None:
    """The model cannot go on faithfully: say why and stop the process
    (the smoke step reports the crash) rather than run on with wrong values."""
    sys.stderr.write("wheelwright ABI model: %s\n" % what)
    traceback.print_exc()
    sys.stderr.flush()
    os.abort()


def _callback(restype, argtypes, function) -> int:
    callback = ctypes.CFUNCTYPE(restype, *argtypes)(function)
    _keep.append(callback)
    return ctypes.cast(callback, ctypes.c_void_p).value


_symbols = {}


def _symbol(name: str) -> int:
    if name not in _symbols:
        _symbols[name] = memory.process_symbol(name)
    return _symbols[name]


def _source(location) -> tuple:
    """A :class:`win64_capi.Location` as the source of an :class:`x64.Move`."""
    if location.where == "gpr":
        return ("int", location.reg)
    if location.where == "xmm":
        return ("xmm", int(location.reg[3:]))
    return ("stack", location.offset)


def _moves(kinds, sources, placement) -> list:
    return [x64.Move(k, s, _source(d)) for k, s, d in zip(kinds, sources, placement.locations)]


def bridge_for(target: int, kinds, *, sources=None, variadic=False, hook=None) -> bytes:
    """The Win64 -> System V bridge calling ``target`` with arguments of
    ``kinds``; ``sources`` overrides where each is read (default: the Win64
    positions of :func:`win64_capi.win64_sources`)."""
    if sources is None:
        sources = [_source(loc) for loc in capi.win64_sources(kinds)]
    placement = capi.sysv_placement(kinds, variadic)
    return x64.bridge(target, _moves(kinds, sources, placement), placement.stack_bytes, save_win64_callee=True,
                      vector_count=placement.al if placement.al is not None else 0, hook=hook)


def _map(code: bytes) -> int:
    (address,) = memory.map_code([code])
    _ours.add(address)
    return address


def _image_sources(count: int) -> list:
    """Argument *i* read from the image the dispatcher spilled (``rsp+8+8i``)."""
    return [("stack", 8 + 8 * i) for i in range(count)]


def _generic(target: int, hook=None) -> int:
    kinds = ["ptr"] * GENERIC_ARGS
    return _map(bridge_for(target, kinds, variadic=True, hook=hook))


def _post_wrapper(target: int, stack_bytes: int, post) -> int:
    """``target`` wrapped so that ``post(result, error_slots, args)`` decides
    the result the module sees (see :func:`x64_extra.post_call`)."""
    address = _callback(ctypes.c_int64, (ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p), post)
    return _map(x64_extra.post_call(target, stack_bytes, address, _symbol("PyErr_Fetch"), _symbol("PyErr_Restore")))


def _dispatcher(select) -> int:
    """A Win64 entry that calls ``select(image)`` for the bridge to jump to."""

    def guarded(image):
        try:
            return select(image)
        except BaseException as e:  # noqa: BLE001 - the process cannot continue
            _abort("cannot place the arguments of a call: %s" % e)
            return 0

    address = _callback(ctypes.c_void_p, (ctypes.c_void_p,), guarded)
    return _map(x64_extra.dispatcher(address, _symbol("PyErr_Fetch"), _symbol("PyErr_Restore")))


def _raise_into(slots: int, exc_type, message: str) -> None:
    """Stores a new exception where ``PyErr_Restore`` will raise it from."""
    value = message
    for obj in (exc_type, value):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    memory.write_u64(slots, id(exc_type))
    memory.write_u64(slots + 8, id(value))
    memory.write_u64(slots + 16, 0)


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def _write32(address: int, value: int, unsigned: bool) -> None:
    ctypes.memmove(address, struct.pack("<I" if unsigned else "<i", value), 4)


def _long_result(name: str, sig):
    """``post`` for a function returning a C ``long``: Windows' value, and
    Windows' OverflowError when the host's does not fit 32 bits."""
    unsigned = capi._strip_const(sig.c_ret) == "unsigned long"

    def post(result, slots, args):
        error_set = memory.read_u64(slots) != 0
        value = result & ((1 << 64) - 1) if unsigned else result
        outcome = capi.windows_return(name, value, error_set)
        if outcome.error is not None and not error_set:
            _raise_into(slots, OverflowError, outcome.error[1])
        if outcome.overflow_flag is not None:
            _write32(memory.read_u64(args + 8), outcome.overflow_flag, False)
        return _signed(outcome.value if not unsigned else outcome.value & 0xFFFFFFFF)

    return post


class _Pending(threading.local):
    def __init__(self):
        self.parses = []


_pending = _Pending()


def _parse_store(result, slots, args):
    """After a PyArg_Parse* call with ``l``/``k`` units: the host wrote 8
    bytes into the model's slots; the module gets the 4 bytes Windows would
    store, or the OverflowError Windows raises for an ``l`` out of 32 bits
    (units before it stored, as on Windows)."""
    buffer, stores = _pending.parses.pop()
    if result == 0:
        return 0
    for slot, (module_ptr, unit) in enumerate(stores):
        value = _signed(memory.read_u64(ctypes.addressof(buffer) + 8 * slot))
        win, error = capi.windows_parse_long(unit, value)
        if error is not None:
            _raise_into(slots, OverflowError, error[1])
            return 0
        _write32(module_ptr, win, unit == "k")
    return result


def _variadic(name: str, sig, target: int, hook=None) -> int:
    """The import of a format-driven variadic function: a dispatcher that
    reads the format string at each call and jumps to the bridge for it."""
    ssize_t = capi.hash_is_ssize_t(name, sys.version_info[:2])
    bridges = {}

    def select(image):
        fmt = ctypes.string_at(memory.read_u64(image + 8 * sig.fmt_arg))
        entry = bridges.get(fmt)
        if entry is None:
            units = capi.varargs_units(sig.family, fmt, ssize_t=ssize_t)
            kinds = list(sig.args) + [u.kind for u in units]
            fixed = len(sig.args)
            longs = [fixed + i for i, u in enumerate(units) if sig.family == "parse" and u.unit in ("l", "k")]
            callbacks = [fixed + i for i, u in enumerate(units) if capi.is_callback(u.c_type)]
            placement = capi.sysv_placement(kinds, True)
            call = target
            if longs:
                call = _post_wrapper(target, placement.stack_bytes, _parse_store)
            code = bridge_for(call, kinds, sources=_image_sources(len(kinds)), variadic=True, hook=hook)
            entry = bridges[fmt] = (_map(code), longs, [units[i - fixed].unit for i in longs], callbacks)
        address, longs, long_units, callbacks = entry
        for i in callbacks:
            _wrap_image(image + 8 * i, name)
        if longs:
            buffer = (ctypes.c_uint64 * len(longs))()
            stores = []
            for slot, (i, unit) in enumerate(zip(longs, long_units)):
                stores.append((memory.read_u64(image + 8 * i), unit))
                memory.write_u64(image + 8 * i, ctypes.addressof(buffer) + 8 * slot)
            _pending.parses.append((buffer, stores))
        return address

    return _dispatcher(select)


def _with_callbacks(sig, target: int, hook=None) -> int:
    """The import of a function taking function pointers of the module
    (``PyCapsule_New``'s destructor, ``Py_AtExit``'s function): each is
    swapped for a System V -> Win64 stub before the bridge runs."""
    kinds = list(sig.args)
    if any(k in capi.FLOAT_KINDS for k in kinds[:4]):
        raise ImportError("%s: a float register argument beside a callback is not modelled" % sig.name)
    bridge = _map(bridge_for(target, kinds, sources=_image_sources(len(kinds)), hook=hook))
    indices = sig.callback_args

    def select(image):
        for i in indices:
            _wrap_image(image + 8 * i, sig.name)
        return bridge

    return _dispatcher(select)


def _wrap_image(address: int, callee: str) -> None:
    """Swaps a function pointer in a call's argument image (on the stack,
    writable) for its guarded System V -> Win64 stub (a callback the module
    passed to ``callee``)."""
    value = memory.read_u64(address)
    if value and value not in _ours:
        memory.write_u64(address, callable_from_sysv(value, "a callback passed to %s" % callee))


def _returned_slot(result, slots, args):
    """``PyType_GetSlot``: a function CPython hands back is called by the
    module with Win64 registers: the module's own function when it is one of
    our stubs, else a Win64 -> System V thunk for it."""
    if result == 0 or memory.read_u64(slots):
        return result
    slot = _signed(memory.read_u64(args + 8)) & 0xFFFFFFFF
    if slot in (PY_TP_BASE, PY_TP_BASES, PY_TP_DOC, PY_TP_METHODS, PY_TP_MEMBERS, PY_TP_GETSET, PY_TP_TOKEN):
        return result
    address = result & ((1 << 64) - 1)
    if address in _stub_origin:
        return _signed(_stub_origin[address])
    if address not in _generic_thunks:
        _generic_thunks[address] = _generic(address)
    return _signed(_generic_thunks[address])


def _refused(name: str) -> int:
    def refuse(*_args):
        _abort("%s takes a va_list, which the Windows model does not rebuild" % name)
        return 0

    return _callback(ctypes.c_void_p, (), refuse)


def thunk(name: str, target: int, hook=None) -> int:
    """What the module calls for C-API function ``name`` (the host's
    function at ``target``): a Win64 -> System V bridge, behind a dispatcher
    or around a result check when the function needs one."""
    sig = capi.signature(name)
    if sig is None:
        return _generic(target, hook)
    if "va_list" in sig.args:
        return _refused(name)
    if sig.variadic:
        if sig.family in ("count", "null_terminated"):
            return _generic(target, hook)  # PyObject * (and Py_ssize_t) only
        return _variadic(name, sig, target, hook)
    kinds = list(sig.args)
    if name == "PyType_GetSlot":
        target = _post_wrapper(target, 0, _returned_slot)
    elif sig.returns_long and capi.LONG_RETURN_RULES.get(name) in _NARROWED:
        target = _post_wrapper(target, capi.sysv_placement(kinds, False).stack_bytes, _long_result(name, sig))
    if sig.callback_args:
        return _with_callbacks(sig, target, hook)
    return _map(bridge_for(target, kinds, hook=hook))


def callable_from_sysv(target: int, name: str = None, kind: str = "void") -> int:
    """A System V -> Win64 stub for a function of the module, taking up to
    :data:`CALLBACK_ARGS` integer-class arguments, behind the Win64 ABI
    guard (rbx, rbp, rdi, rsi, r12-r15 and xmm6-15 filled with random values
    and checked on return; see :func:`guards.guard`); ``name`` is what a
    violation names (default: the address) and ``kind`` what the function
    returns (``object``, ``init``, ``int``, ``void``: a callback whose
    result the model does not know is ``void``, so a failed guard never
    releases it as an object). The same stub for the same function."""
    if target in _ours or target == 0:
        return target
    stub = _callback_stubs.get(target)
    if stub is None:
        kinds = ["ptr"] * CALLBACK_ARGS
        sources = [("int", r) for r in x64.SYSV_INT]
        dests = [("int", x64.WIN64_INT[i]) if i < 4 else ("stack", x64.WIN64_SHADOW + 8 * (i - 4)) for i in range(len(kinds))]
        moves = [x64.Move(k, s, d) for k, s, d in zip(kinds, sources, dests)]
        guard = guards.guard(target, name or "the module's function at %#x" % target, guards.WIN64, kind)
        code = x64.bridge(target, moves, x64.WIN64_SHADOW + 8 * (CALLBACK_ARGS - 4), save_win64_callee=False, guard=guard)
        stub = _map(code)
        _callback_stubs[target] = stub
        _stub_origin[stub] = target
    return stub


# typeslots.h: the slot ids whose value is not a function (PyType_GetSlot
# hands those back unchanged).
PY_TP_BASE, PY_TP_BASES, PY_TP_DOC, PY_TP_METHODS = 48, 49, 56, 64
PY_TP_MEMBERS, PY_TP_GETSET, PY_TP_TOKEN = 72, 73, 83


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

    return _callback(None, (ctypes.c_void_p, ctypes.c_void_p), hook)


# The C-API functions that receive tables of the module's functions: the
# guards' table walkers, each function replaced by its guarded System V ->
# Win64 stub (named after its table entry).
_HOOKS = guards.hooks(lambda target, name, kind: callable_from_sysv(target, name, kind))


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
    # The alignment check sits in front of the thunk (or of the variadic
    # dispatcher): rsp must be 16-byte aligned at the module's call; then the
    # home space is written as a Windows callee may write it.
    bridge = thunk(imp.name, address, hook=_guarded(hook) if hook else None)
    return guards.checked_call(imp.name, _map(x64_extra.home_space_poison(bridge)))
