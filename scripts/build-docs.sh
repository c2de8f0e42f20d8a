#!/usr/bin/env bash
# The collection's docs site (make docs), offline: every module, role and filter plugin
# and the guides of docs/*.md, with antsibull-docs and Sphinx (sphinx-ansible-theme),
# into build/docs/site/build/html (open index.html).
#
# Usage: scripts/build-docs.sh [--check] [--screenshots]
#   --check        do not rewrite docs/docsite/rst/: fail if it is not what docs/*.md gives
#   --screenshots  also render the collection index and one module page with headless
#                  Chromium into build/docs/screenshots/ and check that they show a page
#
# The site is built from the collection as Galaxy gets it (ansible-galaxy collection
# build, installed into build/docs/collections). Any Sphinx warning fails the build; no
# network lookup is made: the labels of docs.ansible.com the pages refer to come from a
# local inventory (scripts/docs_site.py inventory).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$root/.venv/bin:$PATH"
py="$root/.venv/bin/python"
check=0 screenshots=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --screenshots) screenshots=1 ;;
    *) echo "usage: $0 [--check] [--screenshots]" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
stale=0
if [ $check -eq 1 ]; then
  "$py" scripts/md2rst.py --check || stale=1   # reported; the site is still built, then this fails
else
  "$py" scripts/md2rst.py
fi

out="$root/build/docs"
site="$out/site"
rm -rf "$out"
mkdir -p "$out/collections" "$site"
chmod 700 "$site"   # antsibull-docs wants its directories writable only by their owner
export ANSIBLE_COLLECTIONS_PATH="$out/collections"
ansible-galaxy collection build --output-path "$out" "$root" >/dev/null
ansible-galaxy collection install --offline --force -p "$out/collections" "$out"/tlsops-haproxy_acme-*.tar.gz >/dev/null
# The guides as docs/*.md has them now, even when docs/docsite/rst/ is behind (--check says so).
"$py" scripts/md2rst.py --out "$out/collections/ansible_collections/tlsops/haproxy_acme/docs/docsite/rst" >/dev/null
version=$(sed -n 's/^version: *//p' galaxy.yml)

antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir "$site" \
  --project tlsops.haproxy_acme --copyright "tlsops.haproxy_acme contributors" \
  --title "tlsops.haproxy_acme $version" tlsops.haproxy_acme >/dev/null
# No inventory from the network: only the local one written below.
cat >> "$site/conf.py" <<'EOF'

# scripts/build-docs.sh: built offline; docs.ansible.com's labels come from a local inventory.
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '../ansible_devel.inv'),
}
EOF

cd "$site"
mkdir -p rst
chmod og-w rst
antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything --use-current \
  --squash-hierarchy --fail-on-error --dest-dir rst tlsops.haproxy_acme >antsibull-docs.log 2>&1 \
  || { cat antsibull-docs.log; exit 1; }
"$py" "$root/scripts/docs_site.py" inventory rst ansible_devel.inv
if ! sphinx-build -M html rst build -c . -W --keep-going -q -w sphinx-warnings.log >sphinx.log 2>&1; then
  cat sphinx.log sphinx-warnings.log
  echo "build-docs: Sphinx warned (above); every warning fails the site" >&2
  exit 1
fi
html="$site/build/html"
for page in index.html acme_stateless_order_module.html haproxy_role.html renewal_due_filter.html \
    docsite/fleet.html docsite/testing.html; do
  [ -s "$html/$page" ] || { echo "build-docs: $page is missing from the site" >&2; exit 1; }
done
echo "build-docs: $(find "$html" -name '*.html' | wc -l) pages in $html ($(( $(date +%s) - t0 )) s)"

if [ $screenshots -eq 1 ]; then
  command -v chromium >/dev/null || { echo "build-docs: chromium is not installed (scripts/bootstrap.sh)" >&2; exit 1; }
  shots="$out/screenshots"
  mkdir -p "$shots"
  for page in index acme_stateless_order_module; do
    profile=$(mktemp -d)
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --user-data-dir="$profile" --screenshot="$shots/$page.png" --window-size=1280,900 \
      "file://$html/$page.html" >"$shots/$page.log" 2>&1 || { cat "$shots/$page.log"; rm -rf "$profile"; exit 1; }
    rm -rf "$profile"
  done
  "$py" "$root/scripts/docs_site.py" check-png "$shots/index.png" "$shots/acme_stateless_order_module.png"
  echo "build-docs: screenshots in $shots ($(( $(date +%s) - t0 )) s)"
fi
if [ $stale -eq 1 ]; then
  echo "build-docs: docs/docsite/rst/ is behind docs/*.md (above): run make docs and commit it" >&2
  exit 1
fi
