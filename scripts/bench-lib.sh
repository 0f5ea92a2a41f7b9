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
