# Sourced by the other scripts: make .venv with the project and its dev tools installed.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "chainworker needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.chainworker-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing chainworker and its tools into .venv (log: .venv/pip.log)"
    if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
           .venv/bin/python -m pip install --quiet -e '.[dev]'; } > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "installing into .venv failed" >&2
        exit 2
    fi
    touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
