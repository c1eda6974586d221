#!/usr/bin/env bash
# Per-thread CPU of wsgate per handshake: runs the bench's echo backend and load generator
# (build them first with `npm run bench -- --quick` or bench/run.ts) against wsgate pinned to
# core 0, and prints user and kernel µs per handshake for each thread of the wsgate process,
# from /proc/PID/task/*/stat. Extra arguments go to node (e.g. --cpu-prof).
#   bash bench/handshake-cpu.sh [node args]      (STRACE=1 also counts syscalls with strace -c)
set -euo pipefail
cd "$(dirname "$0")/.."
B=bench/build
T=$(mktemp -d)
trap 'kill $W $BE 2>/dev/null || true; rm -rf "$T"' EXIT
"$B/echo-backend" --host 127.0.0.1 --port 0 >"$T/be.out" 2>&1 &
BE=$!
for _ in $(seq 50); do grep -q listening "$T/be.out" && break; sleep 0.1; done
BP=$(grep -o 'listening [0-9]*' "$T/be.out" | awk '{print $2}')
P=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
printf 'Listen 127.0.0.1:%s\nLogLevel warn\nProxyPass "/" "ws://127.0.0.1:%s/"\n' "$P" "$BP" >"$T/wsgate.conf"
taskset -c 0 node "$@" dist/src/cli.js -f "$T/wsgate.conf" 2>"$T/wsgate.err" &
W=$!
sleep 1
snap() { for t in /proc/$W/task/*; do echo "$(basename "$t") $(tr ' ' _ <"$t/comm") $(awk '{print $14, $15}' "$t/stat")"; done | sort; }
taskset -c 1 "$B/loadgen" handshake --port "$P" --concurrency 64 --warmup 1 --duration 2 --reps 1 >/dev/null
snap >"$T/s0"
if [ "${STRACE:-}" = 1 ]; then strace -f -c -o "$T/strace" -p "$W" & ST=$!; sleep 0.5; fi
taskset -c 1 "$B/loadgen" handshake --port "$P" --concurrency 64 --warmup 0 --duration 5 --reps 1 >"$T/lg.json"
snap >"$T/s1"
N=$(grep -o '"handshakes":[0-9]*' "$T/lg.json" | head -1 | cut -d: -f2)
echo "handshakes: $N  errors: $(grep -o '"errors":[0-9]*' "$T/lg.json" | head -1 | cut -d: -f2)"
HZ=$(getconf CLK_TCK)
join "$T/s0" "$T/s1" | awk -v n="$N" -v hz="$HZ" '{u=($6-$3)*1e6/hz/n; s=($7-$4)*1e6/hz/n; if (u+s>0.5) printf "thread %-8s %-16s user %6.1f µs  kernel %6.1f µs per handshake\n", $1, $2, u, s}'
if [ "${STRACE:-}" = 1 ]; then kill -INT "$ST"; sleep 0.5; echo "syscalls (strace -c; divide by the handshakes strace saw):"; head -20 "$T/strace"; fi
