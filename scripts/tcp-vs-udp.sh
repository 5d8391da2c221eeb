#!/bin/sh
# What a subscriber over ICE-TCP costs the worker, against one over UDP:
# fan-out runs of the load generator (1 publisher, N-1 subscribers),
# alternating UDP and TCP (`--tcp`: the participants offer ICE-TCP
# candidates only), a fresh `parloir serve` on loopback for each run.
# Prints one line of figures per run. Build first:
#   cargo build --release --workspace
# Usage: [N=121] [RUNS=4] scripts/tcp-vs-udp.sh
set -e
cd "$(dirname "$0")/.."
N=${N:-121}
RUNS=${RUNS:-4}
i=0
while [ $i -lt $RUNS ]; do
  i=$((i+1))
  for mode in udp tcp; do
    target/release/parloir serve --http 127.0.0.1:18080 --media 127.0.0.1:18000 \
      --capacity-pps 10000000 --admission-threshold 1 --max-participants 200 >/dev/null 2>&1 &
    SPID=$!
    sleep 1
    flag=""; [ $mode = tcp ] && flag=--tcp
    target/release/parloir-loadtest run --target http://127.0.0.1:18080 --preset fanout \
      --participants $N --duration 10 --target-pid $SPID --json $flag 2>/dev/null \
      | python3 -c "import json,sys; d=json.load(sys.stdin); print('$mode', d['joined'], 'rx/s=%.0f'%(d['packets_received']/d['window_s']), 'loss=%.2f'%d['loss_pct'], 'p50=%.2f'%d['delay_p50_ms'], 'p99=%.2f'%d['delay_p99_ms'], 'cpu=%.3f'%d['target_load'], 'us/pkt=%.2f'%d['cpu_us_per_packet'], 'rss=%.0f'%(d['target_rss_kib']/1024), 'gen=%.2f'%d['generator_load'])"
    kill $SPID; wait $SPID 2>/dev/null
  done
done
