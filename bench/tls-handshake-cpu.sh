#!/usr/bin/env bash
# CPU per TLS handshake of one TLS front, by hand: the bench's echo backend, the front pinned to
# core 0 (wsgate with TLS in its engine, wsgate on Node's TLS, or HAProxy set up as bench/run.ts
# does: TLS 1.3, X25519, no tickets, no session cache), and `loadgen handshake --tls` on core 1.
# Prints user and kernel µs per handshake for the front's process (all threads); STRACE=1 adds a
# syscall count, ECHO=SIZE measures CPU per echoed message instead, IDLE=N measures memory per idle tunnel instead, PERF=FILE records `perf record -g` of the measured window into FILE.
# Build bench/build/ first (npm run bench -- --quick, or gcc as bench/run.ts buildC does).
#   bash bench/tls-handshake-cpu.sh [native|node|haproxy] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
WHO=${1:-native}
DUR=${2:-5}
B=bench/build
T=$(mktemp -d)
W=
BE=
trap 'kill $W $BE 2>/dev/null || true; rm -rf "$T"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout "$T/key.pem" -out "$T/cert.pem" \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2>/dev/null
cat "$T/cert.pem" "$T/key.pem" >"$T/both.pem"
"$B/echo-backend" --host 127.0.0.1 --port 0 >"$T/be.out" 2>&1 &
BE=$!
for _ in $(seq 50); do grep -q listening "$T/be.out" && break; sleep 0.1; done
BP=$(grep -o 'listening [0-9]*' "$T/be.out" | awk '{print $2}')
P=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
case "$WHO" in
  native | node)
    printf 'Listen 127.0.0.1:%s https\nSSLEngine on\nSSLCertificateFile %s\nSSLCertificateKeyFile %s\nSSLProtocol -all +TLSv1.3\nSSLSessionTickets off\nSSLOpenSSLConfCmd Curves X25519\nLogLevel warn\nProxyPass "/" "ws://127.0.0.1:%s/"\n' \
      "$P" "$T/cert.pem" "$T/key.pem" "$BP" >"$T/wsgate.conf"
    WSGATE_NATIVE_TLS=$([ "$WHO" = native ] && echo 1 || echo 0) taskset -c 0 node ${NODE_ARGS:-} dist/src/cli.js -f "$T/wsgate.conf" 2>"$T/front.err" &
    W=$!
    ;;
  haproxy)
    cat >"$T/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9980
  tune.ssl.cachesize 0
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:$P ssl crt $T/both.pem ssl-min-ver TLSv1.3 no-tls-tickets curves X25519
  default_backend be
backend be
  server s1 127.0.0.1:$BP
CFG
    taskset -c 0 haproxy -db -f "$T/haproxy.cfg" 2>"$T/front.err" &
    W=$!
    ;;
  *) echo "who: native, node or haproxy" >&2; exit 2 ;;
esac
sleep 1
if [ -n "${IDLE:-}" ]; then
  # memory per idle TLS tunnel instead: RSS of the front with IDLE tunnels open − before, ÷ tunnels
  taskset -c 1 "$B/loadgen" idle --tls --sni bench.test --port "$P" --conns "$IDLE" --settle 1 --watch "$W" >"$T/lg.json" 2>/dev/null
  grep -o '"live":[0-9]*\|"rss_kb_before":[0-9]*\|"rss_kb_after":[0-9]*' "$T/lg.json" | tr '\n' ' ' |
    awk -F'[: ]' '{printf "%s idle: %s tunnels, %.2f KB each\n", who, $2, ($6-$4)/$2}' who="$WHO"
  exit 0
fi
cpu() { awk '{print $14, $15}' /proc/$W/stat; }
# ECHO=SIZE: CPU per echoed message of SIZE bytes instead (the bench's echo64/echo16k loads)
if [ -n "${ECHO:-}" ]; then
  if [ "$ECHO" -ge 4096 ]; then LOAD=(echo --conns 50 --inflight 4 --size "$ECHO"); else LOAD=(echo --conns 100 --inflight 16 --size "$ECHO"); fi
else
  LOAD=(handshake --concurrency 64)
fi
taskset -c 1 "$B/loadgen" "${LOAD[@]}" --tls --sni bench.test --port "$P" --warmup 1 --duration 2 --reps 1 >/dev/null
read -r u0 s0 < <(cpu)
if [ "${STRACE:-}" = 1 ]; then strace -f -c -o "$T/strace" -p "$W" & ST=$!; sleep 0.5; fi
if [ -n "${PERF:-}" ]; then perf record -g -o "$PERF" -p "$W" 2>/dev/null & PF=$!; sleep 0.3; fi
taskset -c 1 "$B/loadgen" "${LOAD[@]}" --tls --sni bench.test --port "$P" --warmup 0 --duration "$DUR" --reps 1 >"$T/lg.json"
read -r u1 s1 < <(cpu)
if [ -n "${PERF:-}" ]; then kill -INT "$PF"; wait "$PF" 2>/dev/null || true; fi
N=$(grep -o "\"$([ -n "${ECHO:-}" ] && echo echoes || echo handshakes)\":[0-9]*" "$T/lg.json" | head -1 | cut -d: -f2)
HZ=$(getconf CLK_TCK)
echo "$WHO ${ECHO:+echo $ECHO B }units: $N errors: $(grep -o '"errors":[0-9]*' "$T/lg.json" | head -1 | cut -d: -f2)"
awk -v n="$N" -v hz="$HZ" -v u="$((u1 - u0))" -v s="$((s1 - s0))" 'BEGIN{printf "user %7.2f µs  kernel %7.2f µs  total %7.2f µs per unit\n", u*1e6/hz/n, s*1e6/hz/n, (u+s)*1e6/hz/n}'
if [ "${STRACE:-}" = 1 ]; then kill -INT "$ST"; sleep 0.5; echo "syscalls (strace -c, for ~$N handshakes):"; head -30 "$T/strace"; fi
