"""Running macOS (Mach-O) and Windows (PE) extension modules inside a Linux CPython.

The wheelwright smoke step puts this package on ``PYTHONPATH`` and selects a
model with ``WHEELWRIGHT_ABIMODEL`` (``macos-x86_64`` or ``windows-x86_64``);
the pytest plugin in :mod:`_wheelwright_abimodel.plugin` then installs the
meta-path finder of :mod:`_wheelwright_abimodel.finder`, so that the project's
own tests ``import`` the exact bytes the wheel ships.

Modules:

- :mod:`memory`: anonymous mappings, protections, the interpreter's own symbols.
- :mod:`macho`, :mod:`pe`: parse and map one image, bind its imports.
- :mod:`x64`: the one generator of machine code (thunks and stubs).
- :mod:`win64`: the Windows model (Win64 <-> System V at every crossing).
- :mod:`finder`: the import hook.
"""

MODELS = ("macos-x86_64", "windows-x86_64")
"""The values ``WHEELWRIGHT_ABIMODEL`` may take."""
