#!/usr/bin/env bash
# Installs the system packages the local SalesPulse stack runs on (Debian/Ubuntu):
# redis-server, prometheus, prometheus-alertmanager, a Java runtime and Maven (Kafka's
# jars come from Maven Central), and jemalloc (the workers' memory allocator, see
# worker_allocator in salespulse/config.py). Idempotent: does nothing (no apt-get update)
# when every command and library is already present. The packages' own services are not started: the stack runs
# its own instances on its own ports (see salespulse/stack).
set -euo pipefail

# command that must exist -> Debian package providing it
declare -A NEEDED=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [java]=default-jre-headless
  [mvn]=maven
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
has_jemalloc() { /sbin/ldconfig -p | grep -q 'libjemalloc\.so\.2'; }
has_jemalloc || missing+=(libjemalloc2)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all present (redis-server prometheus prometheus-alertmanager java mvn libjemalloc2)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep the packages' init scripts from starting system-wide daemons on the default ports
# (9090, 9093/9094, 6379) during the install; only if no policy is in place already.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-system-deps: $cmd still missing" >&2; exit 1; }
done
has_jemalloc || { echo "install-system-deps: libjemalloc.so.2 still missing" >&2; exit 1; }
echo "install-system-deps: done"
