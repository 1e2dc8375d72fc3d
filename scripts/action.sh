#!/usr/bin/env bash
# The GitHub Action's build step (see action.yml): submit the project, wait,
# download every artifact into dist/, and expose the paths as step outputs.
# Inputs come from INPUT_SERVER, INPUT_PATH, INPUT_TARGETS and
# WHEELWRIGHT_TOKEN; outputs go to $GITHUB_OUTPUT, as Actions sets them.
set -euo pipefail
: "${INPUT_SERVER:?the server input is required}"
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (run inside GitHub Actions, or set it)}"
workspace=${GITHUB_WORKSPACE:-$PWD}
project="$workspace/${INPUT_PATH:-.}"
dist="$workspace/dist"

build_json=$(mktemp)
status=0
wheelwright submit "$project" --server "$INPUT_SERVER" --target "${INPUT_TARGETS:-all}" \
  --wait --download "$dist" --json >"$build_json" || status=$?

# Every finding of the static checks as a GitHub annotation on its line
# (once per place, whichever targets it holds for).
python3 - "$build_json" "${INPUT_PATH:-.}" <<'PY'
import json, os, sys
try:
    build = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
escape = lambda s: s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
seen = set()
for target in build.get("targets") or []:
    for f in target.get("findings") or []:
        key = (f["file"], f["line"], f["column"], f["rule"], f["message"])
        if key in seen:
            continue
        seen.add(key)
        level = "error" if f["severity"] == "error" else "warning"
        path = escape(os.path.normpath(os.path.join(sys.argv[2], f["file"])).replace(",", "%2C"))
        print(f"::{level} file={path},line={f['line']},col={f['column']},title=wheelwright {f['rule']}::{escape(f['message'])}")
PY
if [ "$status" -ne 0 ]; then
  rm -f "$build_json"
  exit "$status"
fi

id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$build_json")
{
  echo "build-id=$id"
  echo "dist=$dist"
  echo "wheels<<WHEELWRIGHT_EOF"
  find "$dist" -maxdepth 1 -name '*.whl' | sort
  echo "WHEELWRIGHT_EOF"
  echo "sdist=$(find "$dist" -maxdepth 1 -name '*.tar.gz' | sort | head -n 1)"
} >>"$GITHUB_OUTPUT"
rm -f "$build_json"
echo "wheelwright build $id: artifacts in $dist"
