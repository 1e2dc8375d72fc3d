"""Where each image was mapped, for the host's crash reports.

gdb cannot read a hand-mapped Mach-O or PE: it sees anonymous memory. So the
finder calls :func:`record` for every image it maps, and the host reads the
file back after a crash and turns the faulting address into the module's
symbol and ``.asm`` line from the build's own line tables. The file says only
a base, a size, a model and the image's file name: the host matches that
name against the modules it built and opens nothing the file names, so a
test that rewrites the file can make its own crash report wrong, nothing more.

Format: one line per image, ``<target> <base hex> <size hex> <file name>``,
the first :func:`record` of a process starting the file afresh (the smoke
step's run under gdb is a second process, whose addresses are the ones its
``$pc`` belongs to).
"""

import os

FILE = ".wheelwright-abimodel-images"
"""The record's name, in the run folder (the test process's working directory)."""

_started = False


def record(path: str, base: int, size: int, target: str) -> None:
    """Notes that the image at ``path`` occupies ``size`` bytes from ``base``.

    ``base`` is where the image's lowest linked address now is: for a Mach-O
    bundle its first segment's ``vmaddr`` (0), for a PE image RVA 0 (its
    preferred ``ImageBase``). ``target`` is the model's name."""
    global _started
    name = os.path.basename(path)
    if any(c.isspace() for c in name) or not name:
        raise ValueError("an image name with white space cannot be recorded: %r" % name)
    mode = "a" if _started else "w"
    with open(os.path.join(os.getcwd(), FILE), mode) as f:
        f.write("%s %x %x %s\n" % (target, base, size, name))
    _started = True
