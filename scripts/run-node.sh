#!/usr/bin/env bash
# `make run`: one node with every service that exists, in the foreground (Ctrl-C stops it).
# The node keeps its state in RUN_DIR (default /var/tmp/hyphae-dev) across runs; the first run
# creates a new mesh there. `make clean-state` starts over.
set -euo pipefail
bin=$1
dir=$2
mkdir -p "$dir"
if [ ! -f "$dir/identity/mesh.toml" ]; then
  "$bin" --state-dir "$dir" init >/dev/null
fi
cat <<TXT

  Hyphae node starting (state in $dir)
    status:   $bin --state-dir $dir status
    raw:      curl -s --unix-socket $dir/run/node.sock http://node/status
    metrics:  curl -s --unix-socket $dir/run/node.sock http://node/metrics
    ping:     $bin --state-dir $dir ping 127.0.0.1
    host:     $bin doctor
  The web dashboard arrives with the gateway (issue 6); this node runs the node agent
  (mutual-TLS QUIC on udp/7440). Stop with Ctrl-C.

TXT
exec "$bin" --state-dir "$dir" node
