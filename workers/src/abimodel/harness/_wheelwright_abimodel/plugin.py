"""The pytest plugin the smoke step loads (``-p _wheelwright_abimodel.plugin``):
installs the finder for the model named by ``WHEELWRIGHT_ABIMODEL`` before
pytest collects (and so imports) the project's tests, and says in the
header which model runs them."""

import os

from . import finder

MODEL = os.environ.get("WHEELWRIGHT_ABIMODEL", "")
if not MODEL:
    raise RuntimeError("WHEELWRIGHT_ABIMODEL is not set: which ABI model should the tests run under?")
finder.install(MODEL)


def pytest_report_header(config):
    if MODEL == "linux-x86_64":
        return "wheelwright ABI guards on: the Linux module runs natively, every call to and from it guarded"
    return "wheelwright ABI model: %s (sys.platform is still %r)" % (MODEL, __import__("sys").platform)
