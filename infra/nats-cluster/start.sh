#!/usr/bin/env bash
# A three-node NATS JetStream cluster on this machine's loopback, for a laptop or a test run:
#   infra/nats-cluster/start.sh            start it (or say it runs), print the NATS_URL to use
#   infra/nats-cluster/start.sh stop       stop it (the stores stay)
#   infra/nats-cluster/start.sh kill N     SIGKILL node N (1–3); `start.sh` starts it again
# Then e.g.: NATS_URL=<printed> HPH_STREAM_REPLICAS=3 npx hph up
# Environment: HPH_CLUSTER_DIR (stores, logs, pids; default ./.nats-cluster), HPH_CLUSTER_PORT (client
# port of node 1, default 4231: nodes on +0, +1, +2, routes on +2000…), NATS_SERVER (default nats-server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${HPH_CLUSTER_DIR:-.nats-cluster}
base=${HPH_CLUSTER_PORT:-4231}
bin=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$dir/n$1.pid" ] && kill -0 "$(cat "$dir/n$1.pid")" 2>/dev/null; }

case "${1:-start}" in
  start)
    for i in 1 2 3; do
      running "$i" && continue
      HPH_NATS_HOST=127.0.0.1 HPH_NATS_NAME="n$i" HPH_NATS_PORT=$((base + i - 1)) HPH_NATS_CLUSTER_PORT=$((base + 2000 + i - 1)) HPH_NATS_STORE="$dir/n$i" \
      HPH_NATS_ROUTE_1="nats-route://127.0.0.1:$((base + 2000))" HPH_NATS_ROUTE_2="nats-route://127.0.0.1:$((base + 2001))" \
      HPH_NATS_ROUTE_3="nats-route://127.0.0.1:$((base + 2002))" \
        nohup "$bin" -c "$here/node.conf" >>"$dir/n$i.log" 2>&1 &
      echo $! >"$dir/n$i.pid"
    done
    for i in 1 2 3; do
      for _ in $(seq 1 100); do port_open $((base + i - 1)) && break; sleep 0.1; done
      port_open $((base + i - 1)) || { echo "node n$i did not start; see $dir/n$i.log" >&2; exit 1; }
    done
    echo "NATS_URL=nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
    ;;
  stop)
    for i in 1 2 3; do running "$i" && kill "$(cat "$dir/n$i.pid")"; rm -f "$dir/n$i.pid"; done
    ;;
  kill)
    n=${2:?which node: 1, 2 or 3}
    running "$n" && kill -9 "$(cat "$dir/n$n.pid")"
    rm -f "$dir/n$n.pid"
    ;;
  *)
    echo "usage: $0 [start | stop | kill N]" >&2
    exit 2
    ;;
esac
