"""ABI guards, in the spirit of FFmpeg's and dav1d's ``checkasm``, on every
target (the Linux ELF module included, loaded by :mod:`elf` for this):

- **Calls from CPython into the module** (``PyInit_<name>`` and every
  function the module hands CPython: ``ml_meth``, module slots, type slots)
  go through a stub made by :func:`x64.bridge` with a :class:`x64.Guard`:
  the callee's callee-saved registers (System V: rbx, rbp, r12-r15; Win64
  also rdi, rsi, xmm6-xmm15) are filled with random values, the function is
  called, and the values are compared on return. The real values are put
  back before CPython sees anything; a mismatch makes the call raise
  ``SystemError`` naming the function, the register, the rule, and the
  ``.asm`` line of the function.
- **Calls from the module into the C API** go through
  :func:`x64.alignment_check`: ``rsp`` must have been 16-byte aligned at the
  ``call``. A misaligned call is recorded (the C API still runs, on a
  realigned stack) and the guard of the module function that made it
  raises ``SystemError`` naming the called function, the rule and the call
  site's ``.asm`` line. On Windows the 32-byte shadow space cannot be
  checked from here (it is the caller's memory either way): the Windows
  model writes it instead, as a Windows callee may
  (:func:`x64_extra.home_space_poison`), so a missing one shows as locals
  reading back ``"noshadow"`` or as a crash, as on Windows, not as a guard
  failure.
- On Windows both guards come from :mod:`win64`: its System V -> Win64
  stubs (``PyInit_<name>``, every table entry, callbacks) carry a
  ``WIN64`` guard, and every import is behind :func:`checked_call`.

The line table (the job's file named by ``WHEELWRIGHT_LINE_TABLE``, written
by the engine: per module file, ranges of linked addresses and
``src/x.asm:LINE: text``) is read only here, for messages.
"""

from __future__ import annotations

import bisect
import ctypes
import json
import os
import sys
import traceback

from . import memory, x64

SYSV = "System V"
WIN64 = "Win64"

_api = ctypes.pythonapi
_api.Py_DecRef.restype = None
_api.Py_DecRef.argtypes = [ctypes.c_void_p]

# The two words a misaligned call into the C API sets: (index of the called
# function + 1, return address). Read and cleared by the report.
_pending = memory.Region(16)

# Per guarded function: (name, entry address, ABI, registers, kind).
_entries = []
# Per C-API function seen through an alignment thunk: its name.
_callees = []
# Every message raised, in order (for the harness's own tests).
violations = []
# ctypes objects the machine code holds addresses of.
_keep = []
# (low, high, slide, ranges) of every mapped image, for line look-ups.
_images = []
_stubs = {}


def _pending_words():
    return _pending.read_u64(0), _pending.read_u64(8)


def register_image(low: int, high: int, slide: int, ranges: list) -> None:
    """Makes ``[low, high)`` (a mapped image, ``slide`` from its linked
    addresses) known for line look-ups; ``ranges`` are ``[start, end,
    text]`` of linked addresses, sorted."""
    _images.append((low, high, slide, sorted(ranges)))


def line_table(path: str) -> list:
    """The engine's ranges for the module file at ``path`` (by file name),
    ``[]`` when the engine wrote none."""
    # The engine names the job's table: this package is the shared copy in
    # the pytest environment, beside which no job's table lies.
    table = os.environ.get("WHEELWRIGHT_LINE_TABLE")
    if not table:
        return []
    try:
        with open(table) as f:
            return json.load(f).get(os.path.basename(path), [])
    except (OSError, ValueError):
        return []


def where(address: int):
    """``src/x.asm:LINE: text`` of an address in a mapped image, or ``None``."""
    for low, high, slide, ranges in _images:
        if low <= address < high:
            linked = address - slide
            i = bisect.bisect_right(ranges, [linked, float("inf"), ""]) - 1
            if i >= 0 and ranges[i][0] <= linked < ranges[i][1]:
                return ranges[i][2]
    return None


def _registers(abi: str):
    return (x64.WIN64_CALLEE_SAVED, 10) if abi == WIN64 else (x64.SYSV_CALLEE_SAVED, 0)


def _message(index: int, mask: int) -> str:
    name, entry, abi, gprs, _kind = _entries[index]
    at = where(entry)
    function = "%s (%s)" % (name, at) if at else name
    parts = []
    bad = [r for i, r in enumerate(gprs) if mask & (1 << i)]
    bad += ["xmm%d" % (6 + k) for k in range(10) if mask & (1 << (16 + k))]
    if bad:
        parts.append(
            "%s returned with %s changed: %s callee-saved under the %s ABI, so a function must restore %s "
            "before it returns" % (function, ", ".join(bad), "it is" if len(bad) == 1 else "they are", abi,
                                  "it" if len(bad) == 1 else "them")
        )
    callee, return_address = _pending_words()
    if callee:
        site = where(return_address - 1) or "%#x" % return_address
        parts.append(
            "%s was called with a misaligned stack (rsp must be 16-byte aligned at every call) from %s, in %s"
            % (_callees[callee - 1], site, name)
        )
    return "wheelwright ABI guard: " + "; ".join(parts)


def _report(index, mask, result, fetched):
    """Called by a guard's machine code on a violation (registers already
    restored, the call's own error fetched into ``fetched``): returns the
    message for ``SystemError``."""
    try:
        text = _message(index, mask or 0)
        _pending.write(0, bytes(16))
        kind = _entries[index][4]
        # The failed call's result is dropped: CPython gets the error value.
        if result and (kind == "object" or (kind == "init" and memory.read_u64(result + 8) != _moduledef_type())):
            _api.Py_DecRef(result)
        for k in range(3):
            _api.Py_DecRef(memory.read_u64(fetched + 8 * k) or None)
    except BaseException:
        traceback.print_exc()
        text = "wheelwright ABI guard: a violation (the report failed, see the log)"
    violations.append(text)
    sys.stderr.write(text + "\n")
    buffer = ctypes.create_string_buffer(text.encode("utf-8", "replace"))
    _keep.append(buffer)
    return ctypes.addressof(buffer)


_report_callback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p)(
    _report
)


def _moduledef_type() -> int:
    return memory.process_symbol("PyModuleDef_Type")


_ERROR_VALUES = {"object": 0, "init": 0, "int": -1, "void": 0}


def guard(target: int, name: str, abi: str, kind: str = "object") -> x64.Guard:
    """The :class:`x64.Guard` for a call from CPython into ``target`` (a
    function of the module, under ``abi``'s rules): what a stub passes to
    :func:`x64.bridge` as ``guard``. ``kind`` is what the function returns:
    ``object`` (a new reference, or NULL), ``init`` (a module or a
    ``PyModuleDef``), ``int`` (-1 on error) or ``void``."""
    gprs, xmms = _registers(abi)
    values = memory.Region(16 * xmms + 8 * len(gprs))
    values.write(0, os.urandom(16 * xmms + 8 * len(gprs)))
    _keep.append(values)
    _entries.append((name, target, abi, gprs, kind))
    return x64.Guard(
        gprs,
        xmms,
        values.base,
        _pending.base,
        len(_entries) - 1,
        ctypes.cast(_report_callback, ctypes.c_void_p).value,
        memory.process_symbol("PyErr_Fetch"),
        memory.process_symbol("PyErr_SetString"),
        memory.process_symbol("PyExc_SystemError"),
        _ERROR_VALUES[kind],
    )


# The callbacks CPython calls take at most six integer-class arguments.
_PASS = [x64.Move("ptr", ("int", r), ("int", r)) for r in x64.SYSV_INT]


def sysv_entry(target: int, name: str, kind: str = "object") -> int:
    """A guarded System V -> System V stub for a function of a Linux or
    macOS module; the same stub for the same function."""
    if target == 0 or target in _ours:
        return target
    stub = _stubs.get(target)
    if stub is None:
        code = x64.bridge(target, _PASS, 0, save_win64_callee=False, guard=guard(target, name, SYSV, kind))
        (stub,) = memory.map_code([code])
        _stubs[target] = stub
        _ours.add(stub)
    return stub


def checked_call(name: str, target: int) -> int:
    """A thunk in front of ``target`` (C-API function ``name``, or a thunk
    for it) that checks the caller's stack alignment (either ABI)."""
    _callees.append(name)
    (thunk,) = memory.map_code([x64.alignment_check(target, _pending.base, len(_callees) - 1)])
    _ours.add(thunk)
    return thunk


_ours = set()


def _cstring(address: int) -> str:
    return ctypes.string_at(address).decode("utf-8", "replace") if address else "?"


def _wrap_at(address: int, name: str, kind: str, wrap=None) -> None:
    value = memory.read_u64(address)
    if value and value not in _ours:
        replacement = (wrap or sysv_entry)(value, name, kind)
        if replacement != value:
            memory.patch_u64(address, replacement)


# The walkers below take ``wrap(target, name, kind) -> stub``: by default
# :func:`sysv_entry` (Linux, macOS); the Windows model passes its guarded
# System V -> Win64 stub maker, so both models walk the tables one way.


def rewrite_methods(table: int, single: bool = False, wrap=None) -> None:
    """Guards ``ml_meth`` of every ``PyMethodDef`` (32 bytes: ml_name,
    ml_meth, ml_flags and padding, ml_doc) of a table, or of one entry."""
    while table and memory.read_u64(table):
        _wrap_at(table + 8, _cstring(memory.read_u64(table)), "object", wrap)
        if single:
            return
        table += 32


# PyModuleDef: m_name at +40, m_methods +64, m_slots +72, m_traverse +80,
# m_clear +88, m_free +96; slots are (int id, padding, void *value).
_MODULE_SLOTS = {1: ("Py_mod_create", "object"), 2: ("Py_mod_exec", "int")}


def rewrite_moduledef(definition: int, wrap=None) -> None:
    """Guards every function a ``PyModuleDef`` hands CPython."""
    module = _cstring(memory.read_u64(definition + 40))
    rewrite_methods(memory.read_u64(definition + 64), wrap=wrap)
    slots = memory.read_u64(definition + 72)
    while slots and memory.read_i32(slots):
        slot = _MODULE_SLOTS.get(memory.read_i32(slots))
        if slot:
            _wrap_at(slots + 8, "%s slot of %s" % (slot[0], module), slot[1], wrap)
        slots += 16
    for offset, field, kind in ((80, "m_traverse", "int"), (88, "m_clear", "int"), (96, "m_free", "void")):
        _wrap_at(definition + offset, "%s of %s" % (field, module), kind, wrap)


# typeslots.h: ids whose value is no function, and what the others return.
_NOT_FUNCTIONS = {48, 49, 56, 64, 65, 72, 73, 83}
_INT_SLOTS = {1, 3, 4, 9, 39, 41, 45, 51, 55, 59, 60, 68, 69, 71}
_VOID_SLOTS = {2, 52, 53, 74, 80}


def rewrite_type_spec(spec: int, wrap=None) -> None:
    """Guards the functions of a ``PyType_Spec`` (name, basicsize, itemsize,
    flags, slots at +24): its slots, methods, and getters and setters."""
    type_name = _cstring(memory.read_u64(spec))
    slots = memory.read_u64(spec + 24)
    while slots and memory.read_i32(slots):
        slot = memory.read_i32(slots)
        value = memory.read_u64(slots + 8)
        if slot == 64:  # Py_tp_methods
            rewrite_methods(value, wrap=wrap)
        elif slot == 73:  # Py_tp_getset: name, get, set, doc, closure
            while value and memory.read_u64(value):
                getter = _cstring(memory.read_u64(value))
                _wrap_at(value + 8, "getter %s of %s" % (getter, type_name), "object", wrap)
                _wrap_at(value + 16, "setter %s of %s" % (getter, type_name), "int", wrap)
                value += 40
        elif slot not in _NOT_FUNCTIONS:
            kind = "int" if slot in _INT_SLOTS else "void" if slot in _VOID_SLOTS else "object"
            _wrap_at(slots + 8, "type slot %d of %s" % (slot, type_name), kind, wrap)
        slots += 16


def hooks(wrap=None) -> dict:
    """The C-API functions that receive tables of the module's functions,
    each with ``rewrite(first, second)`` (its first two arguments) that
    replaces every function of the table by ``wrap``'s stub."""
    return {
        "PyModule_Create2": lambda a, b: rewrite_moduledef(a, wrap),
        "PyModuleDef_Init": lambda a, b: rewrite_moduledef(a, wrap),
        "PyModule_FromDefAndSpec2": lambda a, b: rewrite_moduledef(a, wrap),
        "PyModule_AddFunctions": lambda a, b: rewrite_methods(b, wrap=wrap),
        "PyCFunction_New": lambda a, b: rewrite_methods(a, single=True, wrap=wrap),
        "PyCFunction_NewEx": lambda a, b: rewrite_methods(a, single=True, wrap=wrap),
        "PyCMethod_New": lambda a, b: rewrite_methods(a, single=True, wrap=wrap),
        "PyDescr_NewMethod": lambda a, b: rewrite_methods(b, single=True, wrap=wrap),
        "PyDescr_NewClassMethod": lambda a, b: rewrite_methods(b, single=True, wrap=wrap),
        "PyType_FromSpec": lambda a, b: rewrite_type_spec(a, wrap),
        "PyType_FromSpecWithBases": lambda a, b: rewrite_type_spec(a, wrap),
        "PyType_FromModuleAndSpec": lambda a, b: rewrite_type_spec(b, wrap),
        "PyType_FromMetaclass": lambda a, b: rewrite_type_spec(b, wrap),
    }


# The Linux and macOS tables: guarded System V entries.
HOOKS = hooks()


def _hook(rewrite):
    """A hook for a bridge: a table left unguarded would let violations
    pass unseen, so a failure here stops the process, saying why."""

    def hook(first, second):
        try:
            rewrite(first or 0, second or 0)
        except BaseException:
            sys.stderr.write("wheelwright ABI guard: cannot guard a table the module passed to CPython:\n")
            traceback.print_exc()
            sys.stderr.flush()
            os.abort()

    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(hook)
    _keep.append(callback)
    return ctypes.cast(callback, ctypes.c_void_p).value


def resolve(name: str, _kind=None) -> int:
    """What a Linux or macOS module's binding of C-API symbol ``name`` gets:
    the interpreter's variable for data, an alignment-checked thunk for a
    function (one that also guards the tables it receives, for the
    functions in :data:`HOOKS`)."""
    address = memory.process_symbol(name)
    if not memory.is_code(address):
        return address
    rewrite = HOOKS.get(name)
    if rewrite is not None:
        code = x64.bridge(address, _PASS, 0, save_win64_callee=False, hook=_hook(rewrite))
        (address,) = memory.map_code([code])
    return checked_call(name, address)
