# shellcheck shell=bash
# Shared by the scripts in this folder: install what is missing, idempotently. Sourced, not run.
# Needs root only when a Debian package is missing (as on a fresh machine).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# ensure_apt PACKAGE... : install the Debian packages that are not installed yet.
ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: need root to install ${missing[*]} (or install them yourself)" >&2
        exit 1
    fi
    # Retries: a fresh CI machine sometimes sees a mirror hiccup, and nothing lands when this step fails.
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 update -qq
    # The Debian nginx package may try to start its own service on port 80; we never use it.
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# ensure_venv REQUIREMENTS_FILE : create .venv and install the pinned requirements when they changed.
ensure_venv() {
    local requirements="$ROOT/$1"
    if ! command -v python3 >/dev/null 2>&1; then
        ensure_apt python3 python3-venv
    fi
    # Check for pip, not python: on Debian without python3-venv, `python3 -m venv` leaves a venv with no pip.
    if [ ! -x "$VENV/bin/pip" ]; then
        python3 -m venv "$VENV" 2>/dev/null || { ensure_apt python3-venv; python3 -m venv --clear "$VENV"; }
    fi
    # Reinstall only when the file or one it includes changed: a stamp per file holds their checksum. The files
    # it includes (`-r requirements.txt` in requirements-dev.txt) are installed too, so they get their stamps as
    # well; otherwise the first scripts/run after scripts/test would run pip again.
    local stamp
    stamp="$VENV/.installed-$(basename "$requirements")"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$(requirements_sum "$requirements")" ]; then
        echo "installing Python packages from $1 into .venv" >&2
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
        local file
        for file in "$requirements" $(requirements_includes "$requirements"); do
            requirements_sum "$file" > "$VENV/.installed-$(basename "$file")"
        done
    fi
}

# requirements_includes FILE : the files FILE includes with `-r` (one level, as this project uses).
requirements_includes() {
    sed -n 's/^-r[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$1" | while read -r name; do
        echo "$(dirname "$1")/$name"
    done
}

# requirements_sum FILE : checksum of FILE and the files it includes.
requirements_sum() {
    local includes
    mapfile -t includes < <(requirements_includes "$1")
    cat "$1" "${includes[@]}" | sha256sum | cut -d' ' -f1
}

# wants_help ARG... : true when the arguments ask for --help (scripts answer it without starting anything).
wants_help() {
    local arg
    for arg in "$@"; do
        case "$arg" in -h | --help) return 0 ;; esac
    done
    return 1
}

# require_venv ARG... : what a wrapper of a fleet program (scripts/status, scale, ...) does first. With --help it
# installs the venv (argparse lives there) so the program can answer; otherwise it installs nothing: without a
# .venv, scripts/run has never run in this checkout, so no fleet of it runs, and the wrapper exits with its own
# program's "not running" status, EXIT_NOT_RUNNING (1 unless the wrapper sets it first: scripts/status 2,
# scripts/ctl 7, as their --help says), with a message rather than spend minutes installing packages to say so.
# (scripts/stop alone answers 0 there: a fleet that never ran is stopped, its documented success.)
EXIT_NOT_RUNNING=${EXIT_NOT_RUNNING:-1}
require_venv() {
    if wants_help "$@"; then
        ensure_venv requirements.txt
    elif [ ! -x "$VENV/bin/python" ]; then
        echo "error: the fleet is not running (no .venv yet); start it with scripts/run" >&2
        exit "$EXIT_NOT_RUNNING"
    fi
}

# The fleet's own packages: nginx from Debian (and curl, which the README's first commands use); everything else
# is in the venv.
ensure_fleet() {
    ensure_apt nginx curl
    # FLEET_PROMETHEUS=true also runs Debian's prometheus under supervisord (README, "Prometheus").
    case "${FLEET_PROMETHEUS:-}" in 1 | [Tt]rue | [Yy]es | [Oo]n) ensure_apt prometheus ;; esac
    ensure_venv requirements.txt
}
