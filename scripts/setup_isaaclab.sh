#!/usr/bin/env bash
# Build the Isaac Lab environment: a Python 3.12 venv with Isaac Lab 3.0.0 (kitless, Newton / MuJoCo Warp) and
# this project installed editable. Usage: scripts/setup_isaaclab.sh [DIR]   (default: .venv-isaaclab)
#
# Isaac Lab 3 pins numpy>=2, torch 2.11 and (through Newton) mujoco 3.12, while the embedded runtime needs
# mujoco 4 (mujoco.batch) and numpy<2: the two runtimes live in two venvs. The project goes in with --no-deps
# and then its runtime dependencies that do not clash with Isaac Lab's pins. The arm is spawned from the
# project's own USD (source/roarm_lab/assets/data/roarm_m3.usda), so Isaac Sim's URDF importer is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.venv-isaaclab}"
PY_VERSION=3.12  # Isaac Lab 3.0 ships for Python 3.12 only

source scripts/lib/find_python.sh

if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c "import isaaclab, isaaclab_newton, roarm_lab" 2>/dev/null; then
  echo "$DIR already holds Isaac Lab and roarm_lab; reinstalling the project only"
else
  PYTHON="$(find_python "$PY_VERSION")" || {
    echo "error: Isaac Lab 3 needs Python ${PY_VERSION} and none runs here; install it (e.g. pyenv install" \
      "${PY_VERSION}), or name one with PYTHON_BIN=/path/to/python${PY_VERSION}, and rerun" >&2
    exit 2
  }
  echo "creating $DIR with $("$PYTHON" --version) (Isaac Lab 3.0.0 is about 8 GB and a few minutes)"
  "$PYTHON" -m venv "$DIR"
  "$DIR/bin/python" -m pip install --quiet --upgrade pip
  "$DIR/bin/python" -m pip install --quiet "isaaclab==3.0.0"
fi
"$DIR/bin/python" -m pip install --quiet --no-deps -e .
"$DIR/bin/python" -m pip install --quiet "pyzmq>=25" "msgpack>=1.0" onnxruntime "pyserial>=3.5" \
  "prometheus-client>=0.17" "pytest>=8,<10" "hypothesis>=6,<7"
"$DIR/bin/python" - <<'EOF'
import isaaclab, warp
from roarm_lab.runtime_choice import select_runtime
print(f"Isaac Lab {isaaclab.__version__ if hasattr(isaaclab, '__version__') else '3'}, Warp {warp.__version__}, "
      f"runtime: {select_runtime('isaaclab')}")
EOF
echo "ready: $DIR/bin/python scripts/train.py --task RoArm-Reach-v0 --runtime isaaclab --device cpu"
