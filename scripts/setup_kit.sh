#!/usr/bin/env bash
# Kit's kernel from PyPI in a venv of its own (Python 3.12, about 1 GB): what tests/test_kit_extension.py loads
# the lab panel's extension (exts/roarm_lab_panel) in. It is not Isaac Sim: no omni.ui, omni.usd or PhysX here,
# and it conflicts with Isaac Lab 3.0 (urllib3), hence its own venv.
#   scripts/setup_kit.sh [DIR]      default .venv-kit
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.venv-kit}
KIT_VERSION=6.2.0.0
source scripts/lib/find_python.sh
PY="$(find_python 3.12)" || {
  echo "error: Kit $KIT_VERSION needs Python 3.12 and none runs here; install it (e.g. pyenv install 3.12), or name" \
    "one with PYTHON_BIN=/path/to/python3.12, and rerun" >&2
  exit 2
}
"$PY" -m venv "$DIR"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$DIR/bin/python" -m pip install --quiet --upgrade pip
"$DIR/bin/python" -m pip install --quiet \
  "isaacsim-kernel==$KIT_VERSION" "isaacsim==$KIT_VERSION" "isaacsim-app==$KIT_VERSION"
echo "Kit $KIT_VERSION in $DIR: $DIR/bin/isaacsim omni.app.empty --no-window --allow-root --ext-folder exts --enable roarm_lab_panel"
