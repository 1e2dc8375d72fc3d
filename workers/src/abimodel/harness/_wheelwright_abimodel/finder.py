"""The import hook: a meta-path finder that finds a module's Mach-O (macOS
model) or PE (Windows model) file where CPython would look for its ELF
``.so``, maps it with :mod:`macho` or :mod:`pe`, calls ``PyInit_<name>`` and
hands the module to the import system, so that ``import pymult`` in a
project's tests runs the exact bytes the wheel ships.

The Linux "model" is no model: the ELF module runs natively, but it is
mapped by :mod:`elf` rather than ``dlopen``, so that its bindings and every
function it hands CPython pass through the ABI guards (:mod:`guards`), as
on the other two targets.

Both init styles are served: single-phase (``PyInit`` returns a module) and
multi-phase (it returns a ``PyModuleDef``: the module is then made with
``PyModule_FromDefAndSpec2`` and executed with ``PyModule_ExecDef``, as
``importlib``'s own extension loader does).
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import os
import sys

from . import images, memory

PYTHON_API_VERSION = 1013

_api = ctypes.pythonapi
_api.PyModule_FromDefAndSpec2.restype = ctypes.py_object
_api.PyModule_FromDefAndSpec2.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_int]
_api.PyModule_ExecDef.restype = ctypes.c_int
_api.PyModule_ExecDef.argtypes = [ctypes.py_object, ctypes.c_void_p]
_api.Py_DecRef.restype = None
_api.Py_DecRef.argtypes = [ctypes.c_void_p]

# Images stay mapped for the life of the process, as dlopen-ed modules do.
_loaded = []


class Model:
    """What differs between the macOS and the Windows model: which files are
    candidates, how to map them, how to call into them."""

    name = ""

    def candidates(self, directory: str, tail: str) -> list:
        raise NotImplementedError

    def load(self, path: str):
        """Maps ``path``; returns ``(image, callable address of PyInit_<tail>)``."""
        raise NotImplementedError


class MacOS(Model):
    """macOS x86-64 is System V and LP64 like Linux: map, bind, call."""

    name = "macos-x86_64"
    _magic = b"\xcf\xfa\xed\xfe"

    def candidates(self, directory, tail):
        # What CPython on macOS accepts: <name>.cpython-3XY-darwin.so,
        # <name>.abi3.so, <name>.so.
        tag = "cpython-%d%d-darwin" % sys.version_info[:2]
        return [os.path.join(directory, "%s.%s" % (tail, s)) for s in (tag + ".so", "abi3.so", "so")]

    def is_image(self, path):
        return _starts_with(path, self._magic)

    def load(self, path, tail):
        from . import guards, macho

        image = macho.load(path, guards.resolve, _trap())
        _register(image, path)
        init = "PyInit_" + tail
        return image, guards.sysv_entry(image.export(init), init, "init")


class Linux(Model):
    """Linux x86-64: the ELF module runs natively, mapped by :mod:`elf` so
    that the ABI guards see every crossing (a check, not a model)."""

    name = "linux-x86_64"

    def candidates(self, directory, tail):
        # What CPython on Linux accepts: EXTENSION_SUFFIXES.
        return [os.path.join(directory, tail + s) for s in importlib.machinery.EXTENSION_SUFFIXES]

    def is_image(self, path):
        # Only the wheel's modules: the interpreter's own extensions (and
        # those of the environment pytest comes from) load as always.
        real = os.path.realpath(path)
        homes = {os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
        return not any(real.startswith(h) for h in homes) and _starts_with(path, b"\x7fELF")

    def load(self, path, tail):
        from . import elf, guards

        image = elf.load(path, guards.resolve)
        _register(image, path)
        init = "PyInit_" + tail
        return image, guards.sysv_entry(image.export(init), init, "init")


class Windows(Model):
    """The Windows x64 model: every crossing between the module and CPython
    goes through a Win64 <-> System V bridge (see :mod:`win64`)."""

    name = "windows-x86_64"

    def candidates(self, directory, tail):
        # What CPython on Windows accepts: <name>.cp3XY-win_amd64.pyd, <name>.pyd.
        tag = "cp%d%d-win_amd64" % sys.version_info[:2]
        return [os.path.join(directory, "%s.%s.pyd" % (tail, tag)), os.path.join(directory, tail + ".pyd")]

    def is_image(self, path):
        return _starts_with(path, b"MZ")

    def load(self, path, tail):
        from . import pe, win64

        image = pe.load(path, win64.resolve_import)
        _register(image, path)
        init = "PyInit_" + tail
        # The Win64 guard of the stub checks every Win64 callee-saved register.
        return image, win64.callable_from_sysv(image.export(init), init, "init")


MODELS = {m.name: m for m in (MacOS(), Windows(), Linux())}


def _register(image, path) -> None:
    from . import guards

    region = image.region
    slide = getattr(image, "slide", None)
    if slide is None:
        # A PE image's lines are keyed at its preferred base (ImageBase).
        import struct

        with open(path, "rb") as f:
            head = f.read(4096)
        (lfanew,) = struct.unpack_from("<I", head, 0x3C)
        (image_base,) = struct.unpack_from("<Q", head, lfanew + 24 + 24)
        slide = region.base - image_base
    guards.register_image(region.base, region.base + region.size, slide, guards.line_table(path))


def _starts_with(path: str, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


_trap_address = None


def _trap() -> int:
    """Code that stops the process with SIGILL (``ud2``): the target of
    bindings that must never be called, such as ``dyld_stub_binder``."""
    global _trap_address
    if _trap_address is None:
        _trap_address = memory.map_code([b"\x0f\x0b"])[0]
    return _trap_address


def _moduledef_type() -> int:
    return memory.process_symbol("PyModuleDef_Type")


class Loader(importlib.abc.Loader):
    """Creates the module from the mapped image's ``PyInit_<name>``."""

    def __init__(self, model: Model, path: str):
        self.model = model
        self.path = path
        self._defs = {}

    def create_module(self, spec):
        tail = spec.name.rpartition(".")[2]
        image, init = self.model.load(self.path, tail)
        _loaded.append(image)
        if isinstance(self.model, (MacOS, Windows)):
            # Where it is mapped, for the host to explain a crash in it
            # (gdb cannot read a hand-mapped image).
            images.record(image.path, image.base, image.region.size, self.model.name)
        result = ctypes.PYFUNCTYPE(ctypes.c_void_p)(init)()
        # ctypes raised already if PyInit returned NULL with an exception set.
        if not result:
            raise SystemError("initialization of %s failed without raising an exception" % tail)
        if memory.read_u64(result + 8) == _moduledef_type():
            module = _api.PyModule_FromDefAndSpec2(result, spec, PYTHON_API_VERSION)
            self._defs[id(module)] = result
            return module
        module = ctypes.cast(result, ctypes.py_object).value
        # PyInit returned a new reference and ``.value`` took one more.
        _api.Py_DecRef(result)
        return module

    def exec_module(self, module):
        definition = self._defs.pop(id(module), None)
        if definition is not None:
            _api.PyModule_ExecDef(module, definition)


class Finder(importlib.abc.MetaPathFinder):
    """Finds the model's image for a module, ahead of CPython's own finders
    (which would try to ``dlopen`` a Mach-O ``.so`` and fail)."""

    def __init__(self, model: Model):
        self.model = model

    def find_spec(self, fullname, path, target=None):
        tail = fullname.rpartition(".")[2]
        for directory in sys.path if path is None else path:
            if not isinstance(directory, str):
                continue
            for candidate in self.model.candidates(directory or ".", tail):
                if os.path.isfile(candidate) and self.model.is_image(candidate):
                    loader = Loader(self.model, candidate)
                    spec = importlib.machinery.ModuleSpec(fullname, loader, origin=candidate)
                    # So that the module gets ``__file__``, as a native one does.
                    spec.has_location = True
                    return spec
        return None


def install(model_name: str) -> Finder:
    """Puts the finder for ``model_name`` first on ``sys.meta_path``."""
    try:
        model = MODELS[model_name]
    except KeyError:
        raise ValueError("unknown ABI model %r (known: %s)" % (model_name, ", ".join(sorted(MODELS)))) from None
    # Loaded now, before the finder could be asked for the guards' own imports.
    from . import guards  # noqa: F401

    finder = Finder(model)
    sys.meta_path.insert(0, finder)
    return finder
