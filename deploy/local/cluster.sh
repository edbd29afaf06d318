#!/usr/bin/env bash
# A local provisiond cluster from local binaries: a 3-member etcd, MariaDB, the Okta simulator and two
# provisiond nodes. Keeps every log in one folder, and tears everything down on Ctrl-C.
#
#   deploy/local/cluster.sh [up]          start, print the URLs and who leads, run until Ctrl-C
#   deploy/local/cluster.sh demo [--keep] start, then a scripted failover: load events, kill -9 the primary,
#                                         print the timeline and the verdict against the simulator's truth,
#                                         restart the killed node; stops everything unless --keep
#   deploy/local/cluster.sh primary       (beside a running cluster) which node leads: id, admin URL, pid
#   deploy/local/cluster.sh kill-primary  (beside a running cluster) kill -9 whichever node leads
#   deploy/local/cluster.sh restart-node N   (beside a running cluster) kill -9 node N if it runs, start it again
#
# Needs etcd, etcdctl, mariadbd, mariadb-install-db, curl and node on PATH.
#   PROVISIOND_LOCAL_DIR      where data and logs go (default .local-cluster in the checkout)
#   PROVISIOND_LOCAL_PORT_OFFSET  added to every port below (default 0), to run beside something that holds them
#   PROVISIOND_LEASE_TTL_MS   the nodes' lease TTL (default 2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
script=$root/deploy/local/cluster.sh
# Absolute, without a trailing slash: the lock file sits beside the folder, never inside what is wiped.
dir=$(realpath -m -- "${PROVISIOND_LOCAL_DIR:-$root/.local-cluster}")
[ "$dir" != / ] || { printf 'cluster.sh: PROVISIOND_LOCAL_DIR=/ is not a folder it may wipe\n' >&2; exit 1; }
logs=$dir/logs
lock=$dir.lock
# Written into a folder this script made: it only ever wipes a folder that holds it.
marker=.provisiond-local-cluster
token=local-scim-token-0123456789
sim_token=local-okta-sim-token-0123
app_id=0oalocalapp0000000
ttl=${PROVISIOND_LEASE_TTL_MS:-2000}
off=${PROVISIOND_LOCAL_PORT_OFFSET:-0}
etcd_client() { echo $((23790 + $1 + off)); }
etcd_peer() { echo $((23800 + $1 + off)); }
maria_port=$((33306 + off))
sim_port=$((8090 + off))
scim_port() { echo $((8080 + $1 + off)); }
admin_port() { echo $((9460 + $1 + off)); }
sim_url=http://127.0.0.1:$sim_port

say() { printf '%s\n' "$*"; }
fail() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }

members=""; endpoints=""
for i in 1 2 3; do
  members+="${members:+,}e$i=http://127.0.0.1:$(etcd_peer "$i")"
  endpoints+="${endpoints:+,}127.0.0.1:$(etcd_client "$i")"
done

# Starts node N in the background (the same settings every time, so restart-node can do it from another shell).
start_node() {
  local n=$1
  PROVISIOND_NODE_ID="node-$n" PROVISIOND_DATA_DIR="$dir/node$n" \
  PROVISIOND_SCIM_PORT="$(scim_port "$n")" PROVISIOND_ADMIN_PORT="$(admin_port "$n")" PROVISIOND_SCIM_TOKEN=$token \
  PROVISIOND_STORE_URL="mysql://root@127.0.0.1:$maria_port/app" \
  PROVISIOND_ETCD_ENDPOINTS="$endpoints" PROVISIOND_LEASE_TTL_MS=$ttl \
  PROVISIOND_AGENT_SOURCE=okta-sim PROVISIOND_OKTA_ORG_URL=$sim_url \
  PROVISIOND_OKTA_API_TOKEN=$sim_token PROVISIOND_OKTA_APP_ID=$app_id \
    setsid node --import tsx src/cli/main.ts node >>"$logs/node$n.log" 2>>"$logs/node$n.err" </dev/null 9>&- &
  echo "$!" >"$dir/node$n.pid"
  # Its pid file, not this shell's job table, tracks it (restart-node runs from another shell): no "Killed" notice.
  disown "$!"
}

# wait_until WHAT SECONDS LOG CMD...: runs CMD until it succeeds; past SECONDS, or once the process whose pid
# is in $watch (if set) has exited, prints LOG's last lines and fails.
wait_until() {
  local what=$1 secs=$2 log=$3; shift 3
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if [ -n "${watch:-}" ] && ! kill -0 "$watch" 2>/dev/null; then
      printf 'cluster.sh: %s: the process exited. The last lines of %s:\n' "$what" "$log" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    if (( SECONDS - t0 >= secs )); then
      printf 'cluster.sh: %s: not after %s s. The last lines of %s:\n' "$what" "$secs" "$log" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  say "  ✓ $what ($(( SECONDS - t0 )) s)"
}

role_of() { curl -sf --max-time 2 "http://127.0.0.1:$(admin_port "$1")/status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).role))'; }
# Prints the number (1 or 2) of the node that reports itself primary; fails when none does.
primary_n() {
  for n in 1 2; do [ "$(role_of "$n" 2>/dev/null)" = primary ] && { echo "$n"; return 0; }; done
  return 1
}
# Prints node N's pid while that process runs and is a provisiond node (a pid file outlives its process, and
# the pid may since belong to something else: never signal that).
node_pid() {
  local pid
  pid=$(cat "$dir/node$1.pid" 2>/dev/null) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "src/cli/main.ts node" || return 1
  echo "$pid"
}
# The lock is held while a cluster runs from this folder (by the shell that started it).
# Exit status 75 is flock's answer "held" (-E); anything else (no lock file, no flock) is not "running".
cluster_running() {
  local rc=0
  flock -n -E 75 "$lock" true 2>/dev/null || rc=$?
  [ "$rc" -eq 75 ]
}

cmd_primary() {
  local n
  n=$(primary_n) || fail "no node reports itself primary (is the cluster up, from this checkout with the same PROVISIOND_LOCAL_DIR and PROVISIOND_LOCAL_PORT_OFFSET=$off? Within a lease TTL of a failover, ask again. Its logs: $logs)"
  say "node-$n  admin http://127.0.0.1:$(admin_port "$n")/  SCIM http://127.0.0.1:$(scim_port "$n")/scim/v2/  pid $(node_pid "$n" || echo '?')"
}

cmd_kill_primary() {
  local n
  n=$(primary_n) || fail "no node reports itself primary (is the cluster up, with the same PROVISIOND_LOCAL_DIR and PROVISIOND_LOCAL_PORT_OFFSET=$off? Its logs: $logs)"
  pid=$(node_pid "$n") || fail "node-$n answers as primary but its pid file ($dir/node$n.pid) names no running node: is another cluster using these ports?"
  kill -KILL "$pid"
  rm -f "$dir/node$n.pid"
  say "killed node-$n (pid $pid) at $(date -u +%H:%M:%S.%3N); bring it back with: deploy/local/cluster.sh restart-node $n"
}

cmd_restart_node() {
  local n=${1:-}
  [[ $n == 1 || $n == 2 ]] || fail "usage: cluster.sh restart-node 1|2"
  [ -d "$logs" ] && cluster_running || fail "no cluster is running from $dir (start one with: deploy/local/cluster.sh; the helper commands need the same PROVISIOND_LOCAL_DIR and PROVISIOND_LOCAL_PORT_OFFSET)"
  if pid=$(node_pid "$n"); then kill -KILL "$pid"; say "  killed node-$n (pid $pid)"; fi
  start_node "$n"
  watch=$(cat "$dir/node$n.pid") wait_until "node-$n ready" 30 "$logs/node$n.err" curl -sf "http://127.0.0.1:$(admin_port "$n")/readyz"
  say "  node-$n is $(role_of "$n") (pid $(cat "$dir/node$n.pid"))"
}

case ${1:-up} in
  primary) cmd_primary; exit 0 ;;
  kill-primary) cmd_kill_primary; exit 0 ;;
  restart-node) cmd_restart_node "${2:-}"; exit 0 ;;
  up|demo) mode=${1:-up} ;;
  *) fail "unknown command '$1'; usage: cluster.sh [up | demo [--keep] | primary | kill-primary | restart-node N]" ;;
esac
keep=false
[ "${2:-}" = --keep ] && keep=true

for bin in etcd etcdctl mariadbd mariadb-install-db node curl setsid flock; do
  command -v "$bin" >/dev/null || fail "$bin is not on PATH (apt-get install etcd-server etcd-client mariadb-server curl)"
done

# One cluster per folder: a second start would wipe the first one's data and logs under it.
mkdir -p "$(dirname "$lock")"
exec 9>>"$lock"
if ! flock -n 9; then
  fail "a cluster from this checkout is already running (lock $lock held by pid $(cat "$lock.pid" 2>/dev/null || echo '?')). Stop it with Ctrl-C where it runs, or use another PROVISIOND_LOCAL_DIR and PROVISIOND_LOCAL_PORT_OFFSET."
fi
echo $$ >"$lock.pid"
busy=()
for p in $(etcd_client 1) $(etcd_client 2) $(etcd_client 3) $(etcd_peer 1) $(etcd_peer 2) $(etcd_peer 3) \
  "$maria_port" "$sim_port" "$(scim_port 1)" "$(scim_port 2)" "$(admin_port 1)" "$(admin_port 2)"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && busy+=("$p")
done
[ "${#busy[@]}" -eq 0 ] || fail "ports in use: ${busy[*]} (something else listens there). Stop it, or set PROVISIOND_LOCAL_PORT_OFFSET=$((off + 1000))."

[ -d node_modules ] || npm ci --no-audit --no-fund
if [ -e "$dir" ] && [ ! -f "$dir/$marker" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  fail "$dir exists and was not made by cluster.sh (no $marker in it): not wiping it. Choose an empty or new PROVISIOND_LOCAL_DIR."
fi
rm -rf "$dir" && mkdir -p "$logs" && chmod 755 "$dir" && : >"$dir/$marker"

pids=()
cleanup() {
  trap - EXIT INT TERM
  say ""; say "stopping…"
  local all=("${pids[@]}")
  for n in 1 2; do pid=$(node_pid "$n") && all+=("$pid"); done
  for p in "${all[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    alive=0; for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  # A member that has lost quorum may ignore SIGTERM.
  for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$lock.pid"
  say "logs kept in $logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting a local cluster in $dir"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$dir/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$(etcd_client "$i")" --advertise-client-urls "http://127.0.0.1:$(etcd_client "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(etcd_peer "$i")" --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer "$i")" \
    --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token provisiond-local \
    >"$logs/etcd$i.log" 2>&1 9>&- &
  pids+=($!)
done
wait_until "etcd up (3 members)" 30 "$logs/etcd1.log" env ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health

mariadb-install-db --no-defaults --user=mysql --datadir="$dir/mariadb" --auth-root-authentication-method=normal --skip-test-db >"$logs/mariadb-install.log" 2>&1 \
  || { tail -n 20 "$logs/mariadb-install.log" >&2; fail "mariadb-install-db failed (log above; the mysql user must be able to reach $dir)"; }
mariadbd --no-defaults --user=mysql --datadir="$dir/mariadb" --port="$maria_port" --bind-address=127.0.0.1 \
  --socket="$dir/mariadb/s.sock" --skip-log-bin >"$logs/mariadb.log" 2>&1 9>&- &
pids+=($!)
wait_until "MariaDB up" 60 "$logs/mariadb.log" grep -q "ready for connections" "$logs/mariadb.log"
node -e "require('mysql2/promise').createConnection({host:'127.0.0.1',port:$maria_port,user:'root'}).then(c=>c.query('CREATE DATABASE IF NOT EXISTS app').then(()=>c.end()))"

PROVISIOND_OKTA_SIM_PORT=$sim_port PROVISIOND_OKTA_SIM_TOKEN=$sim_token PROVISIOND_OKTA_SIM_APP_ID=$app_id \
  node --import tsx src/cli/main.ts okta-sim >"$logs/okta-sim.log" 2>&1 9>&- &
pids+=($!)
wait_until "okta-sim up" 30 "$logs/okta-sim.log" curl -sf -H "Authorization: SSWS $sim_token" "$sim_url/sim"

for n in 1 2; do start_node "$n"; done
for n in 1 2; do
  watch=$(cat "$dir/node$n.pid") wait_until "node-$n ready" 60 "$logs/node$n.err" curl -sf "http://127.0.0.1:$(admin_port "$n")/readyz"
done
wait_until "primary elected" 30 "$logs/node1.err" primary_n
p=$(primary_n)

cat <<EOT

provisiond local cluster is up (logs in $logs)
  etcd:       $endpoints
  MariaDB:    mysql://root@127.0.0.1:$maria_port/app
  okta-sim:   $sim_url   (Authorization: SSWS $sim_token, app $app_id; routes: GET $sim_url/sim)
  node-1:     SCIM http://127.0.0.1:$(scim_port 1)/scim/v2/   status page http://127.0.0.1:$(admin_port 1)/   pid $(cat "$dir/node1.pid")
  node-2:     SCIM http://127.0.0.1:$(scim_port 2)/scim/v2/   status page http://127.0.0.1:$(admin_port 2)/   pid $(cat "$dir/node2.pid")
  SCIM token: $token
  primary:    node-$p
EOT

if [ "$mode" = demo ]; then
  say ""
  say "demo: load events, kill -9 the primary, time the failover, check the app against the simulator"
  DEMO_SIM_URL=$sim_url DEMO_SIM_TOKEN=$sim_token DEMO_SCIM_TOKEN=$token \
  DEMO_ADMIN_PORTS="$(admin_port 1),$(admin_port 2)" DEMO_SCIM_PORTS="$(scim_port 1),$(scim_port 2)" \
  DEMO_DIR=$dir DEMO_SCRIPT=$script DEMO_STORE_URL="mysql://root@127.0.0.1:$maria_port/app" \
    node --import tsx deploy/local/demo.ts && demo_rc=0 || demo_rc=$?
  if [ "$keep" = false ]; then exit "$demo_rc"; fi
fi

cat <<EOT

Watch a failover yourself (commands that work whichever node leads):
  deploy/local/cluster.sh primary                    # who leads: node, status page, pid
  curl -s -X POST -H 'Authorization: SSWS $sim_token' -H 'Content-Type: application/json' \\
       -d '{"users":2000,"updates":1000,"perSecond":200,"prefix":"try1"}' $sim_url/sim/load
  deploy/local/cluster.sh kill-primary               # kill -9 whichever leads; the standby takes over after the ${ttl} ms lease
  deploy/local/cluster.sh primary                    # the new primary; its status page shows the failover's legs
  deploy/local/cluster.sh restart-node 1             # bring a killed node back: it rejoins as standby
  (another load needs another "prefix", or its userNames clash with the first one's: 409 dead letters)
Ctrl-C stops everything.
EOT
wait
