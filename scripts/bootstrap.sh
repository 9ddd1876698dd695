#!/usr/bin/env bash
# Set up everything srv6lab needs on Debian 12 (run as root), then run one job:
#   bash scripts/bootstrap.sh demo    # the main job
#   bash scripts/bootstrap.sh test    # the whole test suite
#   bash scripts/bootstrap.sh setup   # only install
# Idempotent: when everything is installed it only checks and returns in a second or two.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
job="${1:-setup}"
shift || true

if [ "$(id -u)" -ne 0 ]; then
    echo "srv6lab needs root (network namespaces, Mininet); run this as root" >&2
    exit 1
fi

apt_packages=(mininet iproute2 iputils-ping nftables procps psmisc ethtool tcpdump make)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

venv="$here/.venv"
stamp="$venv/.srv6lab-installed"
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating the virtual environment in .venv"
    python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing srv6lab and its dependencies into .venv"
    "$venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
    "$venv/bin/pip" install --quiet -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
    "$venv/bin/python" -c "import controller, switchd, lab, finsy, mininet.net, networkx" \
        || { echo "installing the Python dependencies failed" >&2; exit 1; }
    touch "$stamp"
fi
# p4runtime-shell pins protobuf 3.20: it gets its own environment (interop tests use it).
shell_venv="$here/.venv-p4runtime-shell"
if [ ! -x "$shell_venv/bin/python" ] || ! "$shell_venv/bin/python" -c "import p4runtime_sh" 2>/dev/null; then
    echo "==> installing p4runtime-shell into .venv-p4runtime-shell"
    python3 -m venv "$shell_venv"
    "$shell_venv/bin/pip" install --quiet p4runtime-shell 2>&1 | grep -v "is ignored: it is neither" || true
    "$shell_venv/bin/python" -c "import p4runtime_sh" \
        || { echo "installing p4runtime-shell failed" >&2; exit 1; }
fi
# Generated protobuf stubs are made by the build, not committed.
make --no-print-directory -s proto PYTHON="$venv/bin/python"

case "$job" in
    setup) echo "==> srv6lab is installed; activate with: source .venv/bin/activate" ;;
    test) exec "$venv/bin/python" -m pytest "$@" ;;
    demo) exec "$venv/bin/srv6lab" demo "$@" ;;
    *) echo "unknown job '$job' (use setup, test or demo)" >&2; exit 2 ;;
esac
