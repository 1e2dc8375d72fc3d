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
wheelwright submit "$project" --server "$INPUT_SERVER" --target "${INPUT_TARGETS:-all}" \
  --wait --download "$dist" --json >"$build_json"

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
