# Shared by the scripts in this folder (sourced, not run): a pinned uv and the project's
# virtual environment, created on first use so that every command works on a fresh machine.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UV_VERSION=0.13.9
export UV_PYTHON_DOWNLOADS=never   # use the machine's CPython (>= 3.11); never fetch one
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

# Print the path of a uv binary at UV_VERSION, installing it under .cache/ when missing.
uv_bin() {
    local tools="$ROOT/.cache/uv-$UV_VERSION"
    if [[ ! -x $tools/bin/uv ]]; then
        echo "installing uv $UV_VERSION into $tools" >&2
        python3 -m venv "$tools" >&2
        "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
    fi
    echo "$tools/bin/uv"
}

# Create or update .venv from uv.lock (exactly; a stale lock is an error).
sync_env() {
    local uv
    uv=$(uv_bin)
    "$uv" sync --locked --quiet --project "$ROOT" "$@"
}

# Run a command inside the project's environment.
in_env() {
    "$ROOT/.venv/bin/python" -c 'import sys' 2>/dev/null || sync_env
    PATH="$ROOT/.venv/bin:$PATH" "$@"
}
