# Sourced by demo.sh, serve.sh and test.sh: make .venv with the given requirements file.
# Re-installs only when the requirements change, so a second run is quick.
ensure_venv() {
    local requirements="$1"
    local python="${PYTHON:-}"
    if [ -z "$python" ]; then
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null 2>&1 &&
                "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
                python="$candidate"
                break
            fi
        done
    fi
    if [ -z "$python" ]; then
        echo "smartAquarium needs Python 3.11: install it, or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "Creating the virtual environment in .venv with $python"
        "$python" -m venv .venv
    fi
    local stamp=".venv/.installed-$(basename "$requirements")"
    local wanted
    wanted="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
    # requirements-dev.txt includes requirements.txt: after test.sh, demo.sh and
    # serve.sh have nothing to install.
    if [ "$(basename "$requirements")" = requirements.txt ] &&
        [ "$(cat .venv/.installed-requirements-dev.txt 2>/dev/null)" = "$wanted" ]; then
        return 0
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "Installing $requirements into .venv"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" >"$stamp"
    fi
}
