#!/usr/bin/env bash
# Install what `make demo` and `make test` need on a fresh Debian 12 or 13 machine (as root):
# Debian packages (only those missing; one `apt-get update` when anything is), a virtualenv
# with the pinned tool chain (rebuilt when requirements/dev.txt changes), and the collection
# path Ansible expects (build/collections/ansible_collections/tlsops/haproxy_acme).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

apt_packages=(haproxy pebble socat openssl curl ca-certificates python3-venv python3-pip
  systemd-container debootstrap iproute2 wrk rsync git make
  openssh-client util-linux
  python3-cryptography python3-requests python3-pytest python3-hypothesis
  chromium)  # chromium: headless screenshots of the docs site (the docs stage of make test)

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The distribution's HAProxy service is not ours to run during tests: the lab starts its own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi

# Python for the controller tool chain: 3.11 (Debian 12) or whatever python3 is (Debian 13).
python=${PYTHON:-}
if [ -z "$python" ]; then
  # Never the interpreter of the .venv this script may be about to rebuild (make puts
  # .venv/bin first on PATH), which the rebuild deletes first: one outside it.
  search_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v "^$PWD/.venv/bin\$" | paste -sd: -)
  for candidate in python3.11 python3.12 python3.13 python3; do
    if found=$(PATH=$search_path command -v "$candidate" 2>/dev/null); then python=$found; break; fi
  done
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements/dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: building .venv with $python"
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q --disable-pip-version-check -r requirements/dev.txt 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import ansible, cryptography, requests, pytest, hypothesis'
  echo "$want" > "$stamp"
fi

# Newer pebble builds for the lab (Debian trixie's 2.6, sid's 2.10), unpacked into a cache,
# never installed: the pebble_* stages of make test run the ACME tests against them.
scripts/fetch-pebbles.sh || echo "bootstrap: fetching pebble builds failed; the pebble_* test stages will say so"

mkdir -p build/collections/ansible_collections/tlsops
ln -sfn "$root" build/collections/ansible_collections/tlsops/haproxy_acme


# ansible-test --venv downloads a pip bootstrap script from a host these machines
# cannot reach; it uses a cached copy when there is one, so provide our stand-in for
# every pip version this ansible-test pins.
for v in $(grep -ho "pip='[0-9.]*'" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | tr -dc '0-9.\n'); do
  mkdir -p ~/.ansible/test/cache
  cp scripts/ansible-test-get-pip.py ~/.ansible/test/cache/get_pip_${v//./_}.py
done
echo "bootstrap: ready ($(.venv/bin/ansible --version | head -1))"
