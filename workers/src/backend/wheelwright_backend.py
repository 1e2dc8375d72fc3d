"""wheelwright's build backend (PEP 517 and PEP 660).

It builds a project of NASM x86-64 assembly extension modules into a wheel
for the machine it runs on, with the ``wheelwright`` engine shipped inside this
package (``bin/wheelwright``: nothing of the backend is compiled on the user's
machine, only their assembly). The host's own tools do the work: ``nasm`` and
``ld.lld`` (or ``ld``) on Linux, ``nasm`` and Apple's ``ld`` on macOS,
``nasm`` and ``link.exe``/``lld-link`` on Windows; a missing one is named,
with where to get it, in the error.

``config_settings`` (``pip install -C key=value``, ``python -m build -C``):
``targets`` (comma-separated; default: this machine's), ``debug`` (``true``).
As with any build backend, the project's code runs with the user's rights:
no sandbox, and the project's tests are not run (``wheelwright build`` and
the service run them).
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile

__version__ = "@VERSION@"

_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin",
                       "wheelwright.exe" if os.name == "nt" else "wheelwright")


# Per `sys.platform`: the tools a build needs (any one name of each) and
# what to say when one is missing; generated from the engine's recipes.
_TOOLS = json.loads(r"""@TOOLS@""")


def _check_tools():
    """Raises with the name of the first missing tool and how to install it."""
    for tool in _TOOLS.get(sys.platform, []):
        if not any(shutil.which(name) for name in tool["any_of"]):
            raise RuntimeError(tool["missing"])


def _host_target():
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        raise RuntimeError(f"wheelwright builds x86-64 modules; this machine is {machine}")
    targets = {"linux": "linux-x86_64", "darwin": "macos-x86_64", "win32": "windows-x86_64"}
    if sys.platform not in targets:
        raise RuntimeError(f"wheelwright has no target for {sys.platform}")
    return targets[sys.platform]


def _options(config_settings):
    settings = config_settings or {}
    targets = settings.get("targets") or _host_target()
    debug = str(settings.get("debug", "")).lower() in ("1", "true", "yes", "on")
    return targets, debug


def _build(out_dir, config_settings):
    """Runs the engine on the project in the current directory; returns the
    folder with its wheels and sdist."""
    targets, debug = _options(config_settings)
    _check_tools()
    args = [_BINARY, "build", ".", "--out", out_dir, "--target", targets, "--no-smoke", "--sandbox", "none"]
    if debug:
        args.append("--debug")
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout)
        raise RuntimeError("wheelwright could not build this project (its report is above)")
    sys.stdout.write(done.stdout)


def _pick(out_dir, suffix, targets):
    names = sorted(n for n in os.listdir(out_dir) if n.endswith(suffix))
    if suffix == ".whl" and "," not in targets:
        # One target asked for: its wheel.
        tag = {"linux-x86_64": "linux", "macos-x86_64": "macosx", "windows-x86_64": "win_amd64"}[targets]
        names = [n for n in names if tag in n] or names
    if not names:
        raise RuntimeError(f"wheelwright wrote no {suffix} file")
    return names[0]


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with tempfile.TemporaryDirectory() as out:
        _build(out, config_settings)
        name = _pick(out, ".whl", _options(config_settings)[0])
        shutil.copy(os.path.join(out, name), os.path.join(wheel_directory, name))
        return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # Assembled modules cannot be imported from their sources: the editable
    # wheel is the built one (rebuild after changing the assembly).
    return build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    with tempfile.TemporaryDirectory() as out:
        _build(out, config_settings)
        name = _pick(out, ".tar.gz", "")
        shutil.copy(os.path.join(out, name), os.path.join(sdist_directory, name))
        return name


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with tempfile.TemporaryDirectory() as out:
        _build(out, config_settings)
        wheel = os.path.join(out, _pick(out, ".whl", _options(config_settings)[0]))
        with zipfile.ZipFile(wheel) as archive:
            dist_info = next(n.split("/")[0] for n in archive.namelist() if n.split("/")[0].endswith(".dist-info"))
            for member in archive.namelist():
                if member.startswith(dist_info + "/"):
                    archive.extract(member, metadata_directory)
        return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel
