#!/usr/bin/env bash
# Kit's kernel from PyPI in a venv of its own (Python 3.12, about 1 GB): what tests/test_kit_extension.py loads
# the lab panel's extension (exts/roarm_lab_panel) in. It is not Isaac Sim: no omni.ui, omni.usd or PhysX here,
# and it conflicts with Isaac Lab 3.0 (urllib3), hence its own venv.
#   scripts/setup_kit.sh [DIR]      default .venv-kit
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.venv-kit}
KIT_VERSION=6.2.0.0
PY=${KIT_PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.12 "env PYENV_VERSION=3.12.1 python"; do
    if $candidate -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY=$candidate; break; fi
  done
fi
[ -n "$PY" ] || { echo "error: Kit $KIT_VERSION needs Python 3.12 (set KIT_PYTHON=/path/to/python3.12)" >&2; exit 2; }
$PY -m venv "$DIR"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$DIR/bin/python" -m pip install --quiet --upgrade pip
"$DIR/bin/python" -m pip install --quiet \
  "isaacsim-kernel==$KIT_VERSION" "isaacsim==$KIT_VERSION" "isaacsim-app==$KIT_VERSION"
echo "Kit $KIT_VERSION in $DIR: $DIR/bin/isaacsim omni.app.empty --no-window --allow-root --ext-folder exts --enable roarm_lab_panel"
