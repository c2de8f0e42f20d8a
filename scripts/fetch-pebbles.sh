#!/usr/bin/env bash
# Fetch the pebble builds the lab can run besides the system one (tests/lab/README.md):
# the pebble package of a newer Debian suite, downloaded with `apt-get download` under a
# temporary sources list (nothing is installed, apt's own state is not touched) and
# unpacked with `dpkg-deb -x` into <cache>/<upstream version>/.
#
# Usage: scripts/fetch-pebbles.sh [SUITE:SERIES ...]   (default: trixie:2.6 sid:2.10)
#   SERIES is the upstream version prefix wanted from that suite (2.6 -> 2.6.x).
# A series already in the cache is skipped. Each build directory holds usr/bin/pebble,
# usr/bin/pebble-challtestsrv and pebble-build.json (suite, Debian and upstream version,
# the .deb's SHA-256).
#   TLSOPS_PEBBLES_CACHE   cache directory (default /var/cache/tlsops-haproxy-acme/pebbles)
#   TLSOPS_PEBBLES_MIRROR  Debian mirror (default: the one apt already uses)
set -euo pipefail

cache=${TLSOPS_PEBBLES_CACHE:-/var/cache/tlsops-haproxy-acme/pebbles}
wants=("$@")
[ ${#wants[@]} -gt 0 ] || wants=(trixie:2.6 sid:2.10)

# The build of SERIES in the cache, if any (highest version first).
have() {
  local series=$1 dir
  for dir in $(ls -d "$cache/$series".* 2>/dev/null | sort -rV); do
    if [ -x "$dir/usr/bin/pebble" ] && [ -x "$dir/usr/bin/pebble-challtestsrv" ] && [ -f "$dir/pebble-build.json" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

# The mirror apt uses for this machine's own suite: one-line sources first, then deb822.
host_mirror() {
  local codename files=()
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  files+=(/etc/apt/sources.list.d/*.list)
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    awk -v s="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == s) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$codename" 'function flush() { if (ok && uri != "") print uri; ok = 0; uri = "" }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
      END { flush() }' "$f"
  done
  echo http://deb.debian.org/debian
}

missing=()
for want in "${wants[@]}"; do
  suite=${want%%:*} series=${want#*:}
  if dir=$(have "$series"); then
    echo "fetch-pebbles: pebble $series: $dir"
  else
    missing+=("$suite:$series")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

mirror=${TLSOPS_PEBBLES_MIRROR:-}
[ -n "$mirror" ] || { mirrors=$(host_mirror); mirror=${mirrors%%$'\n'*}; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/sources" "$tmp/preferences" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$cache"
for want in "${missing[@]}"; do
  cat >> "$tmp/sources/pebbles.sources" <<EOF
Types: deb
URIs: $mirror
Suites: ${want%%:*}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

EOF
done
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$tmp/sources"
  -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$tmp/preferences"
  -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Dir::State::status=/dev/null
  -o APT::Sandbox::User=root)
echo "fetch-pebbles: reading ${missing[*]} from $mirror"
apt-get "${apt_opts[@]}" -qq update

rc=0
for want in "${missing[@]}"; do
  suite=${want%%:*} series=${want#*:}
  # `madison` lists "pebble | <version> | <mirror> <suite>/main <arch> Packages".
  version=$(apt-cache "${apt_opts[@]}" madison pebble |
    awk -F' *[|] *' -v s="$suite/" -v p="$series." 'index($3, " " s) && (index($2, p) == 1 || index($2, ":" p)) { print $2 }' |
    sort -rV | head -1)
  if [ -z "$version" ]; then
    echo "fetch-pebbles: $suite has no pebble $series.x (it has: $(apt-cache "${apt_opts[@]}" madison pebble | awk -F' *[|] *' '{ print $2 }' | xargs))" >&2
    rc=1
    continue
  fi
  upstream=${version#*:}
  upstream=${upstream%%[-+~]*}
  ( cd "$tmp/debs" && apt-get "${apt_opts[@]}" -qq download "pebble=$version" )
  deb=$(ls "$tmp"/debs/pebble_*.deb)
  dest="$cache/$upstream"
  rm -rf "$dest.partial"
  dpkg-deb -x "$deb" "$dest.partial"
  "$dest.partial/usr/bin/pebble-challtestsrv" -h >/dev/null 2>&1 || [ $? -eq 2 ] ||
    { echo "fetch-pebbles: $dest.partial/usr/bin/pebble-challtestsrv does not run here" >&2; rc=1; continue; }
  cat > "$dest.partial/pebble-build.json" <<EOF
{
  "version": "$upstream",
  "package_version": "$version",
  "suite": "$suite",
  "mirror": "$mirror",
  "deb_sha256": "$(sha256sum "$deb" | cut -d' ' -f1)",
  "fetched": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
  rm -f "$deb"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  echo "fetch-pebbles: pebble $series: $dest (Debian $suite, $version)"
done
exit $rc
