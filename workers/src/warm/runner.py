# The warm test runner (see docs/warm-runner.md). Started by the engine
# inside the sandbox with `-X faulthandler -X dev -B` and the same
# PYTHONHASHSEED as a cold run; it imports pytest and its built-in plugins
# once, then serves runs: one length-prefixed JSON request on fd 0, one
# forked child per request, and two length-prefixed JSON answers on fd 1:
# {"pid": N} when the child exists, {"status": S} (waitpid's raw status)
# when it has ended; {"unisolated": S} instead of both when the child died
# before it was isolated (see `child`). The runner never imports project
# code: everything a test changes dies with its child.
import sys

# `-c` puts the working directory first on sys.path: nothing is imported
# from wherever the runner was started.
if sys.path and sys.path[0] == "":
    del sys.path[0]

import abc  # noqa: E402
import atexit
import ctypes
import gc
import importlib
import importlib.machinery
import inspect
import json
import os
import pathlib
import re
import resource as resource_module
import runpy
import signal
import site
import stat
import struct
import tempfile
import threading
import types
import warnings

import pytest  # noqa: F401  (the point of the runner: imported once)
import _pytest.config

# Every plugin a cold pytest imports before it reads the command line.
for _name in _pytest.config.default_plugins:
    __import__("_pytest." + _name)
del _name

# What every session imports or builds after the command line is read, the
# same for any project: imported (and the JUnit escape's pattern compiled
# into re's cache) here once, instead of in every child. A cold run imports
# the same modules; none of them runs project code.
import email.parser  # noqa: E402,F401  (importlib.metadata, for entry points)
import pdb  # noqa: E402,F401  (the debugging plugin, at configure)
import _pytest._argcomplete  # noqa: E402,F401
import _pytest.junitxml  # noqa: E402

_pytest.junitxml.bin_xml_escape("")

# The ABI harness, from the runner's own read-only copy (its one argument):
# imported (so compiled) once here, not in every child. Only its plugin,
# which installs the model named by the run's environment, is left to the
# child; a run without the harness drops the package (see `child`).
HARNESS_PACKAGE = "_wheelwright_abimodel"


def drop_harness():
    for name in [n for n in sys.modules if n == HARNESS_PACKAGE or n.startswith(HARNESS_PACKAGE + ".")]:
        del sys.modules[name]


if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
    try:
        importlib.import_module(HARNESS_PACKAGE)
        for _file in sorted(os.listdir(os.path.join(sys.argv[1], HARNESS_PACKAGE))):
            if _file.endswith(".py") and _file not in ("__init__.py", "plugin.py"):
                importlib.import_module(HARNESS_PACKAGE + "." + _file[:-3])
    except Exception as _error:  # the children then import the job's copy
        drop_harness()
        os.write(2, ("wheelwright warm runner: the harness: %r\n" % (_error,)).encode())
    finally:
        sys.path.remove(sys.argv[1])

# What pytest derives from its own built-in plugin modules, the same in
# every session whatever the project, computed here once (see "What the
# runner pre-computes" in docs/warm-runner.md). Each shortcut is taken in
# the child only if what it was derived from is still exactly what the
# child's pytest would look at (the same module object, its namespace the
# same objects); anything else (a conftest, a `-p` or entry-point plugin,
# a sitecustomize that changed a built-in module; a pytest whose internals
# are not the ones expected here) gets pytest's own code, as cold.
import _pytest.fixtures  # noqa: E402
import pluggy._manager  # noqa: E402


def builtin_plugin_modules():
    """pytest's built-in plugin modules, as imported above."""
    found = []
    for name in _pytest.config.default_plugins:
        module = sys.modules.get("_pytest." + name)
        if type(module) is types.ModuleType:
            found.append(module)
    return found


HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time
INERT_DESCRIPTORS = tuple(
    type(x)
    for x in (
        type.__dict__["__dict__"],  # getset_descriptor
        type.__dict__["__mro__"],  # member_descriptor
        object.__init__,  # wrapper_descriptor
        str.join,  # method_descriptor
        dict.__dict__["fromkeys"],  # classmethod_descriptor
        len,  # builtin_function_or_method
    )
)


def unwrapped_plainly(function):
    """Whether unwrapping `function` (a function) ends at a function
    without `__wrapped__`, through functions only (a `functools.wraps`
    chain, such as a `contextlib.contextmanager`'s)."""
    for _ in range(100):
        if type(function) is not types.FunctionType:
            return False
        if "__wrapped__" not in function.__dict__:
            return True
        function = function.__dict__["__wrapped__"]
    return False


def plain_instances(kind):
    """Whether an instance of `kind` is itself when read through a class
    and has no `__wrapped__`, by looking at the dictionaries of `kind`'s
    classes only (no `__get__`, no `__wrapped__`, no `__getattr__` or
    `__getattribute__` written in Python, no per-instance attributes): no
    code runs to decide."""
    if type(kind) is not type or kind.__dictoffset__ != 0:
        return False
    for base in kind.__mro__:
        namespace = vars(base)
        if "__get__" in namespace or "__wrapped__" in namespace:
            return False
        # A built-in type's own attribute lookup is C code.
        if base.__flags__ & HEAP_TYPE and ("__getattr__" in namespace or "__getattribute__" in namespace):
            return False
    return True


def inert_value(value):
    """Whether `parsefactories` finds nothing in `value`, an attribute of a
    class it parses an instance of: no fixture, no unwrapping that ends at
    one, and reading it through the class runs no code. Decided on the
    value's type and own attributes only, so that deciding runs no code
    either."""
    kind = type(value)
    if kind is types.FunctionType:
        return unwrapped_plainly(value)
    if kind is property or kind in INERT_DESCRIPTORS:
        return True
    if kind is staticmethod or kind is classmethod:
        function = value.__func__
        copied = getattr(value, "__dict__", {})  # 3.10+: the function's attributes
        return unwrapped_plainly(function) and copied.get("__wrapped__", function) is function
    if kind is type or kind is abc.ABCMeta:
        # A nested class (an exception, say): read through the class, it is
        # itself; looking for its `__wrapped__` runs no code when none of
        # its classes nor its metaclass's define one (nor a `__getattr__`).
        bases = value.__mro__ + kind.__mro__
        return not any("__wrapped__" in vars(base) or "__getattr__" in vars(base) for base in bases)
    # Anything else must be an instance without per-instance attributes of
    # a type with no `__get__` (a string, a number, a tuple, a dict, an ABC's
    # cache…): read through the class, it is itself, and it can hold neither
    # a fixture nor a `__wrapped__`.
    return plain_instances(kind)


def inert_class(cls, definition):
    """Whether `parsefactories` over an instance of `cls` (exactly) finds
    nothing and runs no code: every attribute of `cls` and of its
    metaclass, through their MROs, inert (none a fixture definition, no
    property on the metaclass), and nothing that changes how the instance
    is listed or read (`__dir__`, `__class__`, `__getattribute__`) or how
    the class's attributes are (the metaclass's `__getattr__`,
    `__getattribute__`). The built-in types in the MROs cannot change."""
    if not cls.__flags__ & HEAP_TYPE:
        return False
    # `dir()` reads the instance's `__dict__` and `__class__`; the
    # metaclass's attributes are read for the names only the instance has,
    # and its properties would run their code.
    refusals = ((cls, ("__dir__", "__class__", "__getattribute__"), ()), (type(cls), ("__getattr__", "__getattribute__"), (property,)))
    for owner, refused, kinds in refusals:
        for base in owner.__mro__:
            if not base.__flags__ & HEAP_TYPE:
                continue
            namespace = base.__dict__
            for name in refused:
                if name in namespace:
                    return False
            for value in namespace.values():
                if type(value) is definition or type(value) in kinds or not inert_value(value):
                    return False
    return True


def shortcut_fixture_parsing(modules):
    """`FixtureManager.parsefactories` over a built-in plugin module looks
    at every name in it (~2000 names over all of them, each unwrapped to
    find misplaced fixtures: ~9 ms a session). Only the fixtures and the
    objects that carry a `__wrapped__` can register a fixture or warn. Each
    module gets a stand-in holding just those, which the child's own
    `parsefactories` then parses, when the module's namespace is the one
    seen here and no other of its objects has gained a `__wrapped__`."""
    definition = getattr(_pytest.fixtures, "FixtureFunctionDefinition", None)
    manager = getattr(_pytest.fixtures, "FixtureManager", None)
    original = getattr(manager, "parsefactories", None)
    if not isinstance(definition, type) or not inspect.isfunction(original):
        return
    # pytest 9's call, `parsefactories(holder=plugin, node=session)`;
    # earlier ones pass the plugin positionally, and get no stand-ins.
    holder = inspect.signature(original).parameters.get("holder")
    if holder is None or holder.kind is not inspect.Parameter.KEYWORD_ONLY:
        return
    stand_ins = {}
    for module in modules:
        namespace = dict(module.__dict__)
        kept = {}
        for key, value in namespace.items():
            try:
                parsed = type(value) is definition or hasattr(value, "__wrapped__")
            except Exception:
                parsed = True
            if parsed:
                kept[key] = value
        stand_in = types.ModuleType(module.__name__)
        stand_in.__dict__.update(kept)
        others = [value for key, value in namespace.items() if key not in kept]
        stand_ins[id(module)] = (module, namespace, others, stand_in)

    def unchanged(module, namespace, others):
        now = module.__dict__
        if type(module) is not types.ModuleType or len(now) != len(namespace):
            return False
        for key, value in namespace.items():
            if now.get(key, now) is not value:
                return False
        for value in others:
            try:
                if hasattr(value, "__wrapped__"):
                    return False
            except Exception:
                return False
        return True

    # The instances of pytest's own classes a session registers (the
    # session, its config, the plugin manager, the terminal reporter…): for
    # an instance, parsefactories looks only at what its class and its
    # metaclass hold (a name only the instance has finds nothing there).
    classes = {}
    for module in modules:
        for value in module.__dict__.values():
            if isinstance(value, type) and value.__module__ == module.__name__ and inert_class(value, definition):
                classes[id(value)] = value

    def parsefactories(self, *args, **kwargs):
        # Only the call the manager makes for a registered plugin,
        # `parsefactories(holder=plugin, node=session)`; any other goes
        # through untouched.
        if not args and len(kwargs) == 2 and "node" in kwargs:
            holder = kwargs.get("holder")
            memo = stand_ins.get(id(holder))
            if memo is not None and memo[0] is holder and unchanged(*memo[:3]):
                kwargs["holder"] = memo[3]
            elif classes.get(id(type(holder))) is type(holder) and inert_class(type(holder), definition):
                # Nothing there can register a fixture, warn, or run code.
                return None
        return original(self, *args, **kwargs)

    parsefactories.__doc__ = original.__doc__
    manager.parsefactories = parsefactories


def shortcut_hook_lookup(modules):
    """pluggy finds each `pytest_*` attribute of a plugin, and every
    attribute of the hook specifications, with `inspect.getattr_static`
    (~500 a session); for the built-in modules and `_pytest.hookspec` the
    answer is kept, and given while the module's attribute is the same
    object as here."""
    original = getattr(pluggy._manager, "_static_hook_attr", None)
    if not inspect.isfunction(original) or list(inspect.signature(original).parameters) != ["obj", "name"]:
        return
    known = {}
    hookspec = sys.modules.get("_pytest.hookspec")
    for module in modules + ([hookspec] if type(hookspec) is types.ModuleType else []):
        for key, value in module.__dict__.items():
            if key.startswith("pytest_") or module is hookspec:
                known[(id(module), key)] = (module, value, type(value), original(module, key))

    def _static_hook_attr(obj, name):
        memo = known.get((id(obj), name))
        if memo is not None and memo[0] is obj and type(obj) is types.ModuleType:
            value = obj.__dict__.get(name, known)
            if value is memo[1] and type(value) is memo[2]:
                return memo[3]
        return original(obj, name)

    pluggy._manager._static_hook_attr = _static_hook_attr


def shortcut_entry_points(path):
    """Every session reads the `entry_points.txt` of every distribution on
    sys.path three times (pytest's plugins, pluggy's, the rewrite marks):
    ~2.5 ms. The stdlib's own cache of each sys.path folder's listing
    (`importlib.metadata.FastPath`, kept while the folder's mtime is the
    same) is filled here for the interpreter's and the environment's
    folders, and those distributions' `entry_points.txt` are kept, given
    while `stat` says the file is the one read here (same device, inode,
    size and change time), read again otherwise."""
    import importlib.metadata as metadata

    distribution = getattr(metadata, "PathDistribution", None)
    original = getattr(distribution, "read_text", None)
    if not inspect.isfunction(original):
        return

    def mark(info):
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    kept = {}
    for found in metadata.distributions(path=path):
        folder = getattr(found, "_path", None)
        if type(found) is not distribution or folder is None:
            continue
        file = os.path.join(str(folder), "entry_points.txt")
        try:
            before = os.stat(file)
            with open(file, encoding="utf-8") as opened:
                text = opened.read()
            if mark(os.stat(file)) == mark(before):
                kept[file] = (mark(before), text)
        except (OSError, ValueError):
            continue

    def read_text(self, filename):
        if filename == "entry_points.txt" and type(self) is distribution:
            file = os.path.join(str(self._path), filename)
            memo = kept.get(file)
            if memo is not None:
                try:
                    same = mark(os.stat(file)) == memo[0]
                except OSError:
                    same = False
                if same:
                    return memo[1]
        return original(self, filename)

    read_text.__doc__ = original.__doc__
    distribution.read_text = read_text


def warm_patterns():
    """The regular expressions every session compiles whatever the project,
    compiled here into `re`'s and `fnmatch`'s caches (keyed on the pattern:
    a cached pattern is the one a compile would make), as the JUnit escape's
    above: argparse's (a parser, its help formatter, a parse of options and
    paths), `fnmatch`'s of pytest's default `python_files`,
    `norecursedirs` and doctest globs, the JUnit writer's. ~1.5 ms. A
    pattern some pytest no longer uses only costs a cache entry."""
    import argparse
    import fnmatch

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-o", action="append")
    parser.add_argument("paths", nargs="*")
    parser.parse_known_args(["-o", "x", "path"])
    argparse.HelpFormatter("x")
    defaults = ["test_*.py", "*_test.py", "*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv"]
    for pattern in defaults + ["{arch}", "test*.txt", "test*"]:
        fnmatch.fnmatch("x", pattern)
    re.sub(r"\.py$", "", "x.py")


class RecordingEnviron(dict):
    """`os.environ` while the runner makes the first configuration: the
    same variables, and a note of every one read (with the value read,
    `None` when absent). Listing, changing or copying it makes the
    configuration unusable (`whole`), as its inputs are then unknown."""

    def __init__(self, real):
        super().__init__(real)
        self.read = {}
        self.whole = False

    def __getitem__(self, key):
        self.read[key] = dict.get(self, key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self.read[key] = dict.get(self, key)
        return dict.get(self, key, default)

    def __contains__(self, key):
        self.read[key] = dict.get(self, key)
        return dict.__contains__(self, key)

    def _unknown(self, *args, **kwargs):
        self.whole = True
        raise RuntimeError("the environment was listed or changed")

    __iter__ = __len__ = __setitem__ = __delitem__ = keys = items = values = _unknown
    copy = pop = popitem = clear = update = setdefault = _unknown


def excluded_plugins(args):
    """The `-p no:NAME` arguments, in order, exactly as
    `PytestPluginManager.consider_preparse(args, exclude_only=True)` finds
    them: all that the first configuration takes from the command line."""
    found = []
    i = 0
    while i < len(args):
        opt = args[i]
        i += 1
        if not isinstance(opt, str):
            continue
        if opt == "-p":
            if i >= len(args):
                break
            parg = args[i]
            i += 1
        elif opt.startswith("-p"):
            parg = opt[2:]
        else:
            continue
        if isinstance(parg, str) and parg.strip().startswith("no:"):
            found.append(parg.strip())
        elif not isinstance(parg, str):
            return None  # pytest would fail on it: let it
    return found


# The arguments the smoke step passes (`-p no:cacheprovider`, then others
# that the first configuration does not look at).
PREMADE_ARGS = ("-p", "no:cacheprovider")


def module_state():
    """Every module's namespace, the containers it holds and the namespaces
    of the classes it defines, copied one level deep: what making a
    configuration must leave as it was for a child's own to be the same.
    Compared with `==`, which finds the same objects the same without
    calling their `__eq__` (the identity comes first)."""
    state = []
    for name, module in list(sys.modules.items()):
        if type(module) is not types.ModuleType:
            continue
        namespace = dict(module.__dict__)
        inner = []
        for key, value in namespace.items():
            kind = type(value)
            if kind is dict or kind is list or kind is set:
                inner.append((key, kind(value)))
            elif isinstance(value, type) and vars(value).get("__module__") == name:
                inner.append((key, dict(vars(value))))
        state.append((name, module, namespace, inner))
    return state


def make_config(original, prog):
    """`get_config(PREMADE_ARGS, None, prog=prog)`, recording the
    environment it reads; `None` when anything else in it depends on the
    moment (another read of the working directory, a warning, the whole
    environment)."""
    real_environ, real_getcwd = os.environ, os.getcwd
    calls = []

    def getcwd():
        calls.append(1)
        return real_getcwd()

    recording = RecordingEnviron(real_environ)
    os.environ, os.getcwd = recording, getcwd
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = original(list(PREMADE_ARGS), None, prog=prog)
    finally:
        os.environ, os.getcwd = real_environ, real_getcwd
    # The one read of the working directory is `invocation_params.dir`,
    # which the child replaces (through `os.getcwd`; Python 3.10's pathlib
    # holds its own reference to it, so there none is seen).
    if caught or recording.whole or len(calls) > 1:
        return None
    return config, dict(recording.read)


def shortcut_first_config():
    """`python -m pytest` starts with `get_config`: a plugin manager, a
    Config with its argument parser, and every built-in plugin registered
    (each one's `pytest_addoption` run): ~11 ms, the same for any project.
    The runner makes it once (`make_config`), after a forked probe has made
    one too and found that nothing but new objects came of it
    (`module_state` before and after); a child takes it, with its own
    `invocation_params`, for its first `get_config` if it asks for the
    same excluded plugins and program name, its environment holds what the
    making read, and no project code ran before (see `child`)."""
    config_module = _pytest.config
    original = getattr(config_module, "get_config", None)
    params = getattr(getattr(config_module, "Config", None), "InvocationParams", None)
    prog_name = getattr(config_module, "_get_prog_name", None)
    if not (inspect.isfunction(original) and inspect.isclass(params) and inspect.isfunction(prog_name)):
        return
    wanted = ["args", "plugins", "prog"]
    if list(inspect.signature(original).parameters) != wanted or "dir" not in inspect.signature(params).parameters:
        return
    # What `_console_main` passes when runpy runs pytest/__main__.py.
    prog = prog_name([os.path.join(os.path.dirname(pytest.__file__), "__main__.py")])
    read, write = os.pipe()
    probe = os.fork()
    if probe == 0:
        verdict = b"0"
        try:
            os.close(read)
            before = module_state()
            made = make_config(original, prog)
            del made
            verdict = b"1" if module_state() == before else b"0"
        finally:
            os.write(write, verdict)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        verdict = answer.read()
    os.waitpid(probe, 0)
    if verdict != b"1":
        os.write(2, b"wheelwright warm runner: making a configuration changed a module: not kept\n")
        return
    made = make_config(original, prog)
    if made is None:
        return
    premade = {"config": made[0], "env": made[1], "prog": prog, "excluded": excluded_plugins(PREMADE_ARGS)}

    def get_config(args=None, plugins=None, *, prog=None):
        kept = PREMADE.pop() if PREMADE else None
        if (
            kept is not None
            and plugins is None
            and prog == kept["prog"]
            and args is not None
            and type(args) is list
            and excluded_plugins(args) == kept["excluded"]
            and all(os.environ.get(key) == value for key, value in kept["env"].items())
            and all(module.__dict__ == namespace for module, namespace in kept["modules"])
        ):
            config = kept["config"]
            # What `get_config` itself puts there, now.
            config.invocation_params = params(args=args or (), plugins=plugins, dir=pathlib.Path.cwd())
            return config
        return original(args, plugins, prog=prog)

    get_config.__doc__ = original.__doc__
    config_module.get_config = get_config
    # And, whatever ran in the child before its get_config, pytest's and
    # pluggy's modules as they were when the configuration was made (the same
    # names bound to the same objects: compared by identity first).
    premade["modules"] = [
        (module, dict(module.__dict__))
        for name, module in sys.modules.items()
        if type(module) is types.ModuleType and name.split(".")[0] in ("_pytest", "pytest", "pluggy")
    ]
    PREMADE.append(premade)


# The configuration made before the fork, for the child's first get_config
# (emptied in a child that must not take it).
PREMADE = []

try:
    _modules = builtin_plugin_modules()
    shortcut_fixture_parsing(_modules)
    shortcut_hook_lookup(_modules)
    shortcut_entry_points([p for p in sys.path if p])
    warm_patterns()
    del _modules
    shortcut_first_config()
except Exception as _error:  # pytest's own code then runs unshortened
    os.write(2, ("wheelwright warm runner: the shortcuts: %r\n" % (_error,)).encode())

# The protocol pipes, moved out of the way: a child closes them before it
# runs anything, so it can neither read other requests nor answer for itself.
REQUESTS = os.dup(0)
ANSWERS = os.dup(1)
_null = os.open("/dev/null", os.O_RDWR)
for _fd in (0, 1):
    os.dup2(_null, _fd)
os.close(_null)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 38, 4

# Landlock access rights (include/uapi/linux/landlock.h).
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_ALL_V1 = (1 << 13) - 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]


def landlock_abi():
    return max(0, LIBC.syscall(SYS_CREATE_RULESET, None, 0, 1))


ABI = landlock_abi()


def handled_fs():
    rights = FS_ALL_V1
    if ABI >= 2:
        rights |= FS_REFER
    if ABI >= 3:
        rights |= FS_TRUNCATE
    if ABI >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def restrict(read_only, writable):
    """A fresh Landlock domain, nested in the runner's: only these paths,
    no TCP, no signals or abstract sockets outside the domain. The child's
    siblings and the runner are outside it: not readable, not signalled,
    not traced."""
    if ABI < 6:
        raise OSError("Landlock ABI %d: a warm run needs 6 (signal scoping)" % ABI)
    fs = handled_fs()
    attr = RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    ruleset = LIBC.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    for paths, rights in ((read_only, read), (writable, fs)):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            is_dir = os.path.isdir(path)
            allowed = rights if is_dir else rights & FILE_RIGHTS & fs
            rule = PathBeneath(allowed, fd)
            done = LIBC.syscall(SYS_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0)
            os.close(fd)
            if done < 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule %s" % path)
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if LIBC.syscall(SYS_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


# Making a run's view (see `Sandbox::child_view` and "The view of a warm
# run" in docs/warm-runner.md). The runner keeps CAP_SYS_ADMIN and
# CAP_SETPCAP in its sandbox's user namespace for its children to do this;
# each child drops both (and every other) before anything of a build runs.
VIEW_ROOT = "/run/wheelwright/view"  # sandbox::warm::VIEW_ROOT
CLONE_NEWNS, CLONE_NEWIPC = 0x20000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
# The per-mount flags a bind keeps from its source, as statvfs's ST_* bit
# and mount's MS_* bit (a copied mount may not change its access-time flags):
# read-only, nosuid, nodev, noexec, noatime, nodiratime, relatime,
# nosymfollow.
KEPT_MOUNT_FLAGS = [(1, 1), (2, 2), (4, 4), (8, 8), (1024, 1024), (2048, 2048), (4096, 1 << 21), (0x2000, 256)]
MNT_DETACH = 2
SYS_PIVOT_ROOT, SYS_OPENAT2, SYS_CAPSET = 155, 437, 126
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x02, 0x04
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4


# The highest capability number this kernel knows (read once, not per child).
with open("/proc/sys/kernel/cap_last_cap") as _last:
    CAP_LAST = int(_last.read())


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def checked(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)


def mount(source, target, fstype, flags, data):
    encode = lambda text: None if text is None else os.fsencode(text)  # noqa: E731
    checked(LIBC.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), "mount %s" % target)


def open_source(path, nofollow):
    """An O_PATH descriptor of what the runner sees at `path`; with
    `nofollow`, resolved without following any link (a path a run may have
    written: a link there must not make the child bind something else)."""
    flags = os.O_PATH | os.O_CLOEXEC
    if not nofollow:
        return os.open(path, flags)
    how = OpenHow(flags, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    fd = LIBC.syscall(SYS_OPENAT2, -100, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "openat2 %s" % path)
    return fd


def mount_point(target, is_dir):
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))


def bind(path, target, writable, nofollow, device):
    """Binds the runner's `path` at `target` (with its submounts), then sets
    the bind's own flags: the source's, nosuid, read-only unless
    `writable`, nodev unless `device`. False when there is no such path."""
    try:
        fd = open_source(path, nofollow)
    except FileNotFoundError:
        return False
    try:
        info = os.fstat(fd)
        if device and not stat.S_ISCHR(info.st_mode):
            return False
        mount_point(target, stat.S_ISDIR(info.st_mode))
        mount("/proc/self/fd/%d" % fd, target, None, MS_BIND | MS_REC, None)
        source = os.fstatvfs(fd).f_flag
        flags = MS_NOSUID
        for st, ms in KEPT_MOUNT_FLAGS:
            flags |= ms if source & st else 0
        flags |= 0 if writable else MS_RDONLY
        flags = flags & ~MS_NODEV if device else flags | MS_NODEV
        mount(None, target, None, MS_REMOUNT | MS_BIND | flags, None)
    finally:
        os.close(fd)
    return True


def enter_view(view):
    """Moves the child into a mount namespace of its own whose root is a
    fresh tmpfs holding only `view` (see `Sandbox::child_view`), the
    runner's and every other run's files out of sight, and into an IPC
    namespace of its own (as a cold run's: a SysV object or message queue
    outlives its maker, and would wait there for the next build). Then
    drops every capability."""
    checked(LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    mount("tmpfs", VIEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    for entry in view:
        kind, path = entry["kind"], entry["path"]
        target = VIEW_ROOT + path
        if kind == "tmpfs":
            mount_point(target, True)
            options = "mode=%o,size=%d" % (entry["mode"], entry["size"])
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
        elif kind == "symlink":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(entry["target"], target)
        elif kind == "bind":
            if not bind(path, target, entry["writable"], entry["nofollow"], device=False):
                raise FileNotFoundError(path)
        elif kind == "device":
            bind(path, target, False, False, device=True)
        elif kind == "devpts":
            # What bubblewrap's --dev mounts for a cold run, capped as the
            # helper caps a cold run's.
            mount_point(target, True)
            mount("devpts", target, "devpts", MS_NOSUID | MS_NOEXEC, entry["options"])
        else:
            raise ValueError("a view entry of kind %r" % kind)
    os.chdir(VIEW_ROOT)
    checked(LIBC.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    # The runner's root, now stacked under the view's: detached.
    checked(LIBC.umount2(b".", MNT_DETACH), "umount2")
    os.chdir("/")
    # Its stdin was the runner's /dev/null: the host's node on a writable
    # mount, through which `fchmod` would still reach it. Now the view's.
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    drop_capabilities()


def drop_capabilities():
    """Every capability of the child gone for good: the bounding set, the
    ambient set, then effective, permitted and inheritable (capset v3)."""
    for cap in range(CAP_LAST + 1):
        checked(LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "PR_CAPBSET_DROP %d" % cap)
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    checked(LIBC.syscall(SYS_CAPSET, header, data), "capset")
    with open("/proc/self/status") as status:
        sets = [line.split() for line in status if line.startswith("Cap")]
    if len(sets) < 5 or any(int(value, 16) for _, value in sets):
        raise OSError("a capability is still held: %r" % (sets,))


def views_work():
    """Whether a child can make a view here (a forked probe unshares its
    mount namespace and mounts a tmpfs at VIEW_ROOT): the runner answers
    ready only then."""
    probe = os.fork()
    if probe == 0:
        code = 1
        try:
            checked(LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
            mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            mount("tmpfs", VIEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k")
            code = 0
        except BaseException as error:
            os.write(2, ("wheelwright warm runner: no view can be made here: %r\n" % (error,)).encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(probe, 0)
    return status == 0


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_READ = 250, 1, 11


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def refuse(program):
    """Installs the seccomp filter `program` (the bytes of a `struct
    sock_filter` array, from the host: the calls every step is refused,
    the key management calls among them) on the child and everything it
    starts. `restrict` has set no_new_privs, which it needs."""
    if not program or len(program) % 8:
        raise ValueError("a seccomp program of %d bytes" % len(program))
    code = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(code, ctypes.c_void_p))
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def hold_an_empty_session_keyring():
    """What the helper does for a cold step
    (`seccomp::hold_an_empty_session_keyring`): the runner, and so every
    child, holds an empty session keyring, a new one unless the one it
    inherited (the daemon's) is empty already. A kernel without keys has
    none to leave."""
    listed = LIBC.syscall(SYS_KEYCTL, ctypes.c_long(KEYCTL_READ), ctypes.c_long(-3), None, ctypes.c_long(0))
    if listed == 0:
        return
    if LIBC.syscall(SYS_KEYCTL, ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), None) < 0:
        if ctypes.get_errno() != 38:  # ENOSYS
            raise OSError(ctypes.get_errno(), "KEYCTL_JOIN_SESSION_KEYRING")


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(REQUESTS, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def receive():
    head = read_exact(4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > 1 << 20:
        raise ValueError("request of %d bytes" % size)
    body = read_exact(size)
    if body is None:
        raise ValueError("the request was cut short")
    return json.loads(body)


def answer(message):
    body = json.dumps(message).encode()
    os.write(ANSWERS, struct.pack(">I", len(body)) + body)


def child(request, isolated):
    """The forked child: isolate, say so on `isolated` (a pipe to the
    runner, closed at once), then run pytest as `python -m pytest` would.
    Never returns."""
    code = 70
    try:
        os.setsid()
        out = os.open(request["output"], os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.closerange(3, isolated)
        os.closerange(isolated + 1, 1 << 16)
        for procs in request["cgroups"]:
            with open(procs, "w") as group:
                group.write("0")
        enter_view(request["view"])
        for resource, value in request["rlimits"]:
            resource_module.setrlimit(resource, (value, value))
        restrict(request["read_only"], request["writable"])
        refuse(bytes.fromhex(request["seccomp"]))
        # Isolated: whatever fails from here on is the run's own.
        os.write(isolated, b"1")
        os.close(isolated)
        os.chdir(request["dir"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None
        if not request["harness"]:
            drop_harness()
        # The runner never changes a signal's disposition, so the child's
        # are a fresh interpreter's (faulthandler's included, on fd 2).
        # What `python -m pytest` puts on sys.path: the working directory,
        # then PYTHONPATH, then the interpreter's own.
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(":") if p]
        sys.path[:] = [request["dir"]] + extra + BASE_PATH
        # What site.py does at a cold start, now that PYTHONPATH is on the
        # path: import the first `sitecustomize` found (the wheel's, if it
        # ships one, shadows the interpreter's).
        sys.modules.pop("sitecustomize", None)
        # Project code that runs before pytest (the wheel's sitecustomize,
        # one on PYTHONPATH, or a module of the project that the
        # interpreter's own sitecustomize imports) may change what the first
        # configuration was made from: pytest then makes its own. Decided on
        # where the module is found and on every module it brought in, not on
        # what it leaves in sys.modules (a failing one removes itself).
        found = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
        before = set(sys.modules)
        site.execsitecustomize()
        brought = [sys.modules[name] for name in set(sys.modules) - before]
        if not (found is None or from_interpreter(found.origin)) or not all(map(module_from_interpreter, brought)):
            PREMADE.clear()
        sys.argv[:] = ["-m"] + request["args"]
        try:
            # Exactly what `python -m pytest` runs (pytest/__main__.py).
            runpy.run_module("pytest", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as ended:
            code = ended.code if isinstance(ended.code, int) else (0 if ended.code is None else 1)
        # What the interpreter does at exit: wait for threads, atexit.
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException as error:  # the child must never return into the loop
        try:
            os.write(2, ("wheelwright warm runner: %r\n" % (error,)).encode())
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


BASE_PATH = [p for p in sys.path if p]
INTERPRETER_HOMES = sorted(
    {os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
)


def from_interpreter(file):
    """Whether `file` lies in the interpreter's own folders (read-only in
    every sandbox), as named: a distribution's link there (Debian's
    `sitecustomize.py` into `/etc`) is the distribution's."""
    return isinstance(file, str) and any(os.path.abspath(file).startswith(home) for home in INTERPRETER_HOMES)


def module_from_interpreter(module):
    """Whether `module` is built in or a file of the interpreter's own."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if spec is not None and not getattr(spec, "has_location", False):
        return origin in ("built-in", "frozen", None)
    return from_interpreter(origin)


def main():
    hold_an_empty_session_keyring()
    # Not dumpable: no child can trace the runner or read its memory.
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if not views_work():
        return 1
    answer({"ready": ABI})
    while True:
        request = receive()
        if request is None:
            return 0
        # Everything the runner holds moves to the permanent generation: the
        # child's collections (pytest runs one at the end of every session)
        # then walk only what the child made, instead of the whole heap it
        # shares with the runner, which would also copy every page they touch.
        gc.freeze()
        told, isolated = os.pipe()
        pid = os.fork()
        if pid == 0:
            child(request, isolated)
        os.close(isolated)
        # One byte once the child is isolated; none if it died before (a
        # view or a domain it could not make): the host runs the tests cold.
        said = os.read(told, 1)
        os.close(told)
        if said != b"1":
            _, status = os.waitpid(pid, 0)
            answer({"unisolated": status})
            continue
        answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        # Whatever the child left in its group goes with it.
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        answer({"status": status})


sys.exit(main())
