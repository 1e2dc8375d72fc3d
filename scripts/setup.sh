#!/usr/bin/env bash
# Installs what wheelwright needs on Debian 12, and nothing that is already
# there: nasm, LLD 19 (ld.lld, ld64.lld, lld-link), llvm-dlltool, bubblewrap,
# gdb, Python's venv module, Chromium and its driver for the web tests; then a
# project-local .venv holding pytest for the tests. Safe to run again: a
# second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages, one per line as "<command> <package>".
packages() {
  cat <<'LIST'
nasm nasm
ld.lld-19 lld-19
ld64.lld-19 lld-19
lld-link-19 lld-19
llvm-dlltool llvm
bwrap bubblewrap
gdb gdb
chromium chromium
chromedriver chromium-driver
LIST
}

missing=()
while read -r command package; do
  if ! command -v "$command" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done < <(packages)
# Smoke tests make a virtual environment per interpreter, Debian's own too.
for python in python3 /usr/bin/python3; do
  if command -v "$python" >/dev/null 2>&1 && ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  # De-duplicate (lld-19 provides three commands).
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pytest lives in a project-local virtual environment, never the system Python.
if ! .venv/bin/python -c 'import pytest' >/dev/null 2>&1; then
  echo "setup: creating .venv with pytest"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check pytest
fi
