#!/usr/bin/env bash
# Installs the peer proxies that `npm run bench` compares wsgate with (nginx, HAProxy)
# from Debian's packages, and what the bench builds and runs with (gcc, taskset, OpenSSL's
# headers for the load generator's TLS mode, the openssl command for the TLS certificate).
# Idempotent; not run by CI. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench/setup.sh: nginx, haproxy, gcc, taskset, libssl-dev and openssl are already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update once if the lists are missing or the install fails on stale lists
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $SUDO apt-get update
fi
if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}"; then
  $SUDO apt-get update
  # nginx-light was dropped in newer Debian releases: fall back to nginx
  pkgs=("${need[@]/nginx-light/nginx}")
  $SUDO apt-get install -y --no-install-recommends "${pkgs[@]}" || \
    $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
# The packages start system services on install; the benchmark runs its own instances.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
    $SUDO systemctl disable "$svc" 2>/dev/null || true
  elif [ -x "/etc/init.d/$svc" ]; then
    $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
echo "bench/setup.sh: done ($(command -v nginx || echo /usr/sbin/nginx), $(command -v haproxy || echo /usr/sbin/haproxy))"
