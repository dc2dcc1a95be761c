#!/usr/bin/env bash
# Creates (once) the Python environment the interop tests run in, with the
# packages pinned in requirements.txt (DuckDB and pyarrow for tests/interop.rs,
# FilterPy for tests/kalman_filterpy.rs); prints its python's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TWINFLOW_INTEROP_VENV:-$here/../../target/interop-venv}"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$stamp"
fi
echo "$venv/bin/python"
