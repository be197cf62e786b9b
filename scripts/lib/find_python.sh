# Sourced by the setup scripts: find_python X.Y prints the path of a Python X.Y that runs and has venv.
# It looks by what runs, not by what is on PATH: a pyenv shim named python3.12 is on PATH even when pyenv would
# refuse to run it (no PYENV_VERSION set), and the pyenv command itself may be off PATH (CI shells).
# Order: $PYTHON_BIN if set (then nothing else), pyenv's installed versions (newest patch first; its root from
# $PYENV_ROOT, ~/.pyenv or a shims folder on PATH), then PATH.
python_is() {  # python_is CANDIDATE X.Y: the candidate runs, is version X.Y and can make a venv
  [ -n "$1" ] && "$1" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$2'.split('.'))))" \
    >/dev/null 2>&1
}
find_python() {
  local version="$1" candidate root
  if [ -n "${PYTHON_BIN:-}" ]; then
    python_is "$PYTHON_BIN" "$version" && echo "$PYTHON_BIN" && return 0
    return 1
  fi
  local roots=("${PYENV_ROOT:-}" "${HOME:+$HOME/.pyenv}") entry
  local IFS=:
  for entry in $PATH; do [[ "$entry" == */shims ]] && roots+=("${entry%/shims}"); done  # pyenv's root, from its shims
  unset IFS
  for root in "${roots[@]}"; do
    [ -n "$root" ] || continue
    for candidate in $(ls -d "$root"/versions/"${version}".*/bin/python 2>/dev/null | sort -V -r); do
      python_is "$candidate" "$version" && echo "$candidate" && return 0
    done
  done
  candidate="$(command -v "python${version}" 2>/dev/null || true)"
  python_is "$candidate" "$version" && echo "$candidate" && return 0
  return 1
}
