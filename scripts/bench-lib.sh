# Shared by the benchmark scripts (sourced, not run): one server process at
# a time in $server_pid with its data directory in $data_dir, stopped and
# removed by stop_server (also on exit), and free_port for its address.

server_pid=
data_dir=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
  if [[ -n $data_dir ]]; then
    rm -rf "$data_dir"
    data_dir=
  fi
}
trap stop_server EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_etcd LOG: one etcd ($etcd) with its data in $work/etcd on free
# loopback ports, waited for; sets $etcd_url and $etcd_pid. Needs die().
start_etcd() { # LOG
  local peer i etcd_port
  etcd_port=$(free_port)
  peer=$(free_port)
  etcd_url=http://127.0.0.1:$etcd_port
  "$etcd" --name bench --data-dir "$work/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --initial-cluster-state new \
    --log-level warn >"$1" 2>&1 &
  etcd_pid=$!
  for ((i = 0; i < 300; i++)); do
    python3 -c "import urllib.request; urllib.request.urlopen('$etcd_url/health', timeout=1)" 2>/dev/null && return
    kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited at startup; see $1"
    sleep 0.1
  done
  die "etcd not answering after 30 s; see $1"
}
