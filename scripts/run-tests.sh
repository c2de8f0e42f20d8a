#!/usr/bin/env bash
# Every test of the collection, stage by stage; a failing stage does not hide the others.
# Usage: scripts/run-tests.sh [stage...]   (default: all stages)
# Ends with a line "summary: N passed, M failed" counting stages; exit 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export ANSIBLE_COLLECTIONS_PATH="$root/build/collections"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1
py="$root/.venv/bin/python"

stage_lint() {
  ruff check --output-format concise . || return 1
  mypy plugins/module_utils tests/lab || return 1
  PYTHONPATH="$ANSIBLE_COLLECTIONS_PATH" lint-imports --no-cache || return 1  # pyproject.toml [tool.importlinter]
  antsibull-changelog lint || return 1
  ( cd build/collections/ansible_collections/tlsops/haproxy_acme &&
    antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs=self . ) || return 1
  ansible-lint --profile production --offline roles playbooks extensions/molecule
}

# The fuzz tests draw the same examples on every run of the gate (FUZZ_DERANDOMIZE): make
# test passes or fails by the code alone. make unit and plain pytest draw new ones each run.
stage_unit() {
  FUZZ_DERANDOMIZE=1 "$py" -m pytest -q -p no:cacheprovider tests/unit
}

# module_utils run on managed hosts with the distribution's cryptography and requests
# (38 and 2.28 on Debian 12): run their unit tests with /usr/bin/python3 and those packages.
stage_unit_distro() {
  /usr/bin/python3 -c 'import cryptography, requests, pytest; print("distro python", __import__("sys").version.split()[0], "cryptography", cryptography.__version__, "requests", requests.__version__)' || return 1
  FUZZ_DERANDOMIZE=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/unit/plugins/module_utils
}

# Python versions to run sanity with: every 3.11-3.13 found on PATH or under pyenv.
# ansible-test finds an interpreter as pythonX.Y on PATH, so found ones are linked
# into build/pythons, which is put first on PATH.
sanity_pythons() {
  local v exe
  mkdir -p "$root/build/pythons"
  for v in 3.11 3.12 3.13; do
    exe=""
    for cand in "/usr/bin/python$v" "/usr/local/bin/python$v" ${PYENV_ROOT:-$HOME/.pyenv}/versions/$v*/bin/python$v; do
      if [ -x "$cand" ] && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then exe=$cand; break; fi
    done
    [ -n "$exe" ] || continue
    ln -sfn "$exe" "$root/build/pythons/python$v"
    echo "$v"
  done
}

stage_sanity() {
  local dest="$root/build/ansible-test/ansible_collections/tlsops/haproxy_acme" rc=0 v
  # A fresh copy of the tracked tree; tests/output (ansible-test's virtualenvs) is kept.
  mkdir -p "$dest/tests"
  find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
  find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
  git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- . "$dest/"
  ( cd "$dest" && git init -q && git add -A >/dev/null 2>&1 )
  local versions
  versions=$(sanity_pythons)
  [ -n "$versions" ] || { echo "no Python 3.11-3.13 found for ansible-test sanity"; return 1; }
  for v in $versions; do
    echo "--- ansible-test sanity, Python $v"
    ( cd "$dest" && PATH="$root/build/pythons:$PATH" ansible-test sanity --color no --venv --python "$v" \
        --skip-test pylint ) || rc=1
  done
  # pylint on the code the collection ships (tests follow ruff's rules, which allow `_`).
  v=${versions%%$'\n'*}
  echo "--- ansible-test sanity --test pylint plugins/, Python $v"
  ( cd "$dest" && PATH="$root/build/pythons:$PATH" ansible-test sanity --color no --venv --python "$v" \
      --test pylint plugins/ ) || rc=1
  return $rc
}

stage_integration() {
  "$py" -m pytest -q -p no:cacheprovider -m "not nodes" tests/integration
}

# The ACME tests again against a newer pebble than the system one: a Debian suite's
# build, fetched into a cache by scripts/fetch-pebbles.sh (never installed), chosen
# with TLSOPS_LAB_PEBBLE. What depends on the CA: the modules, the lab's pebble knobs,
# profiles and ARI (test_todays_cas), IP certificates through HAProxy, and the acme_*
# targets. The fault tests and the role renderings do not depend on the pebble build
# and run once, in the integration stage.
acme_on_pebble() {
  local suite=$1 series=$2 ip=tests/integration/test_ip_certificates.py
  scripts/fetch-pebbles.sh "$suite:$series" || return 1
  TLSOPS_LAB_PEBBLE=$series "$py" -m pytest -q -p no:cacheprovider -m "not nodes" \
    tests/integration/test_acme_modules.py tests/integration/test_acme_lab_pebble.py \
    tests/integration/test_todays_cas.py \
    "$ip::test_ip_certificate_served_without_sni_then_renewed_without_reload" \
    "$ip::test_openssl_client_without_servername_gets_the_ip_certificate" \
    tests/integration/test_targets.py -k "not test_target or test_target[acme_"
}

stage_pebble_2_6() {
  acme_on_pebble trixie 2.6
}

# Debian sid's pebble: ARI, profiles, ARI overrides through the management API.
stage_pebble_2_10() {
  acme_on_pebble sid 2.10
}

stage_nodes() {
  "$py" tests/lab/nodes/nodes.py gc >/dev/null 2>&1 || true
  "$py" -m pytest -q -p no:cacheprovider -m nodes tests/integration
}

stage_molecule() {
  [ -d extensions/molecule ] || { echo "no molecule scenarios"; return 0; }
  # From the repository root molecule finds the collection (galaxy.yml) and the shared
  # extensions/molecule/config.yml.
  molecule test --all
}

# The same node tests on the other supported Debian release (bookworm <-> trixie), so
# a Debian 12 machine also proves HAProxy 3.0 / systemd 257 hosts, and the other way round.
stage_other_release() {
  local codename other mirror
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  case "$codename" in
    bookworm) other=trixie ;;
    trixie) other=bookworm ;;
    *) echo "no other Debian release to test nodes with on '$codename'"; return 0 ;;
  esac
  mirror=$("$py" -c 'from tests.lab.nodes.nodes import host_mirror, host_codename; print(host_mirror(host_codename()))') || return 1
  echo "--- nodes of Debian $other (this machine runs $codename), mirror $mirror"
  export TLSOPS_NODES_CODENAME=$other TLSOPS_NODES_MIRROR=$mirror
  "$py" tests/lab/nodes/nodes.py rootfs || return 1
  "$py" -m pytest -q -p no:cacheprovider -m nodes tests/integration/test_fleet.py tests/integration/test_renewal_cron.py || return 1
  molecule test --all
}

# The integration tests that need no nodes once more, inside one booted Debian 13 node:
# its /usr/bin/python3 (3.13) with Debian's cryptography and requests, HAProxy 3.0,
# pebble 2.6 and ansible-core 2.19, the lab on the node's own loopback
# (tests/lab/nodes/lab_in_node.py). Worth it on a Debian 13 machine too: the host's own
# stages run the venv's cryptography and ansible-core, managed hosts run Debian's.
stage_trixie_lab() {
  local mirror
  mirror=$("$py" -c 'from tests.lab.nodes.nodes import host_mirror, host_codename; print(host_mirror(host_codename()))') || return 1
  echo "--- the lab in a Debian trixie node, mirror $mirror"
  export TLSOPS_NODES_CODENAME=trixie TLSOPS_NODES_MIRROR=$mirror
  # The role renderings of test_ip_certificates test Ansible's templating, not HAProxy
  # or Python: they run once, in the integration stage. So does the bench smoke test,
  # which needs the checkout's git and the peers' packages the node lacks.
  "$py" -m tests.lab.nodes.lab_in_node -- -m "not nodes" -k "not test_role_ and not test_bench_smoke" tests/integration
}

# The docs site (scripts/build-docs.sh): docs/docsite/rst/ up to date with docs/*.md, every
# module, role, filter and guide page built offline with no Sphinx warning, and headless
# Chromium screenshots of the collection index and one module page that show a page
# (build/docs/screenshots/). And CHANGELOG.md exactly as antsibull-changelog generates it.
stage_docs() {
  local tmp rc=0
  tmp=$(mktemp -d)
  if antsibull-changelog generate --output "$tmp/CHANGELOG.md" --output-format md; then
    diff -u CHANGELOG.md "$tmp/CHANGELOG.md" ||
      { echo "CHANGELOG.md differs from changelogs/changelog.yaml: run antsibull-changelog generate"; rc=1; }
  else
    rc=1
  fi
  rm -rf "$tmp"
  scripts/build-docs.sh --check --screenshots || rc=1
  return $rc
}

all_stages=(lint docs unit unit_distro sanity integration pebble_2_6 pebble_2_10 nodes molecule other_release trixie_lab)

# run_stage NAME LOG: one stage, its output into LOG; prints "NAME passed|FAILED SECONDS".
run_stage() {
  local s=$1 log=$2 start res
  start=$(date +%s)
  if ( "stage_$s" ) >"$log" 2>&1 </dev/null; then res=passed; else res=FAILED; fi
  printf '%-13s %-7s %4ss\n' "$s" "$res" $(( $(date +%s) - start ))
}

# Stages named on the command line run one after the other, output as it comes.
if [ $# -gt 0 ]; then
  passed=0 failed=0 report=()
  for s in "$@"; do
    s=${s//-/_}
    echo "=== stage $s"
    start=$(date +%s)
    if ( "stage_$s" ); then res=passed; passed=$((passed+1)); else res=FAILED; failed=$((failed+1)); fi
    report+=("$(printf '%-13s %-7s %4ss' "$s" "$res" $(( $(date +%s) - start )))")
  done
  echo "=== stages"
  printf '%s\n' "${report[@]}"
  echo "summary: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
fi

# Every stage: two lanes at once. Each stage uses about one core (Ansible, pytest, HAProxy
# and pebble wait on each other far more than they compute), so on two cores the lanes
# take about half the time one after the other would. The lanes share nothing a stage
# holds: the lab takes free loopback ports, every node set has its own name, addresses
# and state, the node lab locks what they share (rootfs builds, the bridge), and
# nodes.py gc takes down only sets none of whose nodes runs. A stage's output is printed
# whole when it ends, so that two lanes do not interleave.
lanes=("lint docs unit unit_distro sanity integration pebble_2_6 trixie_lab"
       "nodes molecule other_release pebble_2_10")
logs="$root/build/test-logs"
rm -rf "$logs" && mkdir -p "$logs"
lane() {
  local s line
  for s in $1; do
    line=$(run_stage "$s" "$logs/$s.log")
    echo "$line" >"$logs/$s.result"
    {
      flock 9
      echo "=== stage $s"
      cat "$logs/$s.log"
      echo "=== stage $line"
    } 9>"$logs/.print.lock"
  done
}
started=$(date +%s)
pids=()
for l in "${lanes[@]}"; do
  lane "$l" &
  pids+=($!)
done
wait "${pids[@]}"
passed=0 failed=0
echo "=== stages ($(( $(date +%s) - started ))s in two lanes)"
for s in "${all_stages[@]}"; do
  if [ -f "$logs/$s.result" ]; then line=$(cat "$logs/$s.result"); else line=$(printf '%-13s %-7s' "$s" "FAILED (no result)"); fi
  echo "$line"
  case "$line" in *" passed "*) passed=$((passed+1)) ;; *) failed=$((failed+1)) ;; esac
done
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
