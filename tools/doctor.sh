#!/usr/bin/env bash
# make doctor: what this machine needs to build and run fanout locally, and what to do about
# each missing piece, in one screen. Plain bash: it must run before anything else is installed.
# Exits 1 when something required is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

required_rust=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
missing=0

ok() { printf '  ok       %-22s %s\n' "$1" "$2"; }
bad() { printf '  MISSING  %-22s %s\n           fix: %s\n' "$1" "$2" "$3"; missing=1; }
warn() { printf '  warning  %-22s %s\n           %s\n' "$1" "$2" "$3"; }

# version_at_least 1.85.0 1.85 -> true
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

echo "fanout doctor: what make demo, make up and make test need"

if command -v cargo >/dev/null && command -v rustc >/dev/null; then
    have=$(rustc --version | awk '{print $2}')
    if version_at_least "$have" "$required_rust"; then
        ok "Rust" "rustc $have (needs $required_rust or later)"
    else
        bad "Rust" "rustc $have, older than $required_rust" "rustup update stable"
    fi
    for component in rustfmt clippy; do
        if cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            ok "$component" "$(cargo "${component/rustfmt/fmt}" --version 2>/dev/null | head -n1)"
        else
            bad "$component" "not installed (make test runs it)" "rustup component add $component"
        fi
    done
else
    bad "Rust" "cargo and rustc not found" "install rustup from https://rustup.rs, then: rustup default stable"
fi

python=${PYTHON:-python3}
if command -v "$python" >/dev/null; then
    have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if version_at_least "$have" "3.9"; then
        ok "Python" "$("$python" --version 2>&1) (needs 3.9 or later)"
    else
        bad "Python" "$have, older than 3.9" "install Python 3.9+ and run make with PYTHON=python3.x"
    fi
    if "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        ok "Python venv" "the venv and ensurepip modules are there"
    else
        bad "Python venv" "cannot make virtual environments" "install your distribution's python3-venv package (Debian/Ubuntu: apt-get install python3-venv)"
    fi
else
    bad "Python" "$python not found" "install Python 3.9+ (Debian/Ubuntu: apt-get install python3 python3-venv)"
fi

if [ -x .venv/bin/cargo-lambda ] && [ -x .venv/bin/moto_server ] && [ -e .venv/.dev-tools ]; then
    ok "dev tools (.venv)" "$(grep -E '^(cargo-lambda|moto)' requirements-dev.txt | tr '\n' ' ')"
else
    warn "dev tools (.venv)" "not installed yet" "make dev-tools installs them (make demo, up and test do it themselves)"
fi

free_gib=$(df -Pk . | awk 'NR == 2 {printf "%d", $4 / 1048576}')
if [ "${free_gib:-0}" -ge 15 ]; then
    ok "disk" "${free_gib} GiB free here (a debug build of the workspace takes about 10 GiB)"
else
    bad "disk" "${free_gib} GiB free here, less than 15 GiB" "free some space, or cargo clean in old checkouts"
fi

cores=$(nproc 2>/dev/null || echo 1)
if [ "$cores" -ge 2 ]; then
    ok "CPU" "$cores cores"
else
    warn "CPU" "1 core" "everything works; the first build and make test take longer"
fi

# The local stack takes free ports from the system; it needs the loopback interface and some
# ephemeral ports.
if "$python" - <<'EOF' 2>/dev/null
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.close()
EOF
then
    ok "ports" "127.0.0.1 can bind free ports (the stack takes its own)"
else
    bad "ports" "cannot bind a port on 127.0.0.1" "check the loopback interface and firewall rules"
fi

if command -v aws >/dev/null; then
    ok "aws CLI" "$(aws --version 2>&1 | head -n1) (optional: to look at the local stack)"
else
    warn "aws CLI" "not found (optional)" "to look at the local stack: pip install awscli, or .venv/bin/python -m pip install awscli"
fi

if [ "$missing" -ne 0 ]; then
    echo "Fix what is MISSING above, then run make doctor again."
    exit 1
fi
echo "Ready: make demo, make up, make test."
