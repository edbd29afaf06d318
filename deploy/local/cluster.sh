#!/usr/bin/env bash
# A local provisiond cluster from local binaries: a 3-member etcd, MariaDB, the Okta simulator and two
# provisiond nodes. Prints their URLs, keeps every log in one folder, and tears everything down on Ctrl-C.
#
#   deploy/local/cluster.sh            # needs etcd, etcdctl, mariadbd, mariadb-install-db and node on PATH
#   PROVISIOND_LOCAL_DIR=/tmp/pd deploy/local/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dir=${PROVISIOND_LOCAL_DIR:-$root/.local-cluster}
logs=$dir/logs
token=local-scim-token-0123456789
sim_token=local-okta-sim-token-0123
app_id=0oalocalapp0000000
ttl=${PROVISIOND_LEASE_TTL_MS:-2000}

for bin in etcd etcdctl mariadbd mariadb-install-db node; do
  command -v "$bin" >/dev/null || { echo "cluster.sh: $bin is not on PATH (apt-get install etcd-server etcd-client mariadb-server)" >&2; exit 1; }
done
[ -d node_modules ] || npm ci --no-audit --no-fund
rm -rf "$dir" && mkdir -p "$logs" && chmod 755 "$dir"

pids=()
cleanup() {
  echo; echo "stopping…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 2
  # A member that has lost quorum may ignore SIGTERM.
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  echo "logs kept in $logs"
}
trap cleanup EXIT INT TERM

members=""; endpoints=""
for i in 1 2 3; do
  members+="${members:+,}e$i=http://127.0.0.1:2380$i"
  endpoints+="${endpoints:+,}127.0.0.1:2379$i"
done
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$dir/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token provisiond-local \
    >"$logs/etcd$i.log" 2>&1 &
  pids+=($!)
done
until ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; do sleep 0.2; done

mariadb-install-db --no-defaults --user=mysql --datadir="$dir/mariadb" --auth-root-authentication-method=normal --skip-test-db >"$logs/mariadb-install.log" 2>&1
mariadbd --no-defaults --user=mysql --datadir="$dir/mariadb" --port=33306 --bind-address=127.0.0.1 \
  --socket="$dir/mariadb/s.sock" --skip-log-bin >"$logs/mariadb.log" 2>&1 &
pids+=($!)
until grep -q "ready for connections" "$logs/mariadb.log"; do sleep 0.2; done
node -e "require('mysql2/promise').createConnection({host:'127.0.0.1',port:33306,user:'root'}).then(c=>c.query('CREATE DATABASE IF NOT EXISTS app').then(()=>c.end()))"

PROVISIOND_OKTA_SIM_PORT=8090 PROVISIOND_OKTA_SIM_TOKEN=$sim_token PROVISIOND_OKTA_SIM_APP_ID=$app_id \
  node --import tsx src/cli/main.ts okta-sim >"$logs/okta-sim.log" 2>&1 &
pids+=($!)

for n in 1 2; do
  PROVISIOND_NODE_ID="node-$n" PROVISIOND_DATA_DIR="$dir/node$n" \
  PROVISIOND_SCIM_PORT="808$n" PROVISIOND_ADMIN_PORT="946$n" PROVISIOND_SCIM_TOKEN=$token \
  PROVISIOND_STORE_URL="mysql://root@127.0.0.1:33306/app" \
  PROVISIOND_ETCD_ENDPOINTS="$endpoints" PROVISIOND_LEASE_TTL_MS=$ttl \
  PROVISIOND_AGENT_SOURCE=okta-sim PROVISIOND_OKTA_ORG_URL=http://127.0.0.1:8090 \
  PROVISIOND_OKTA_API_TOKEN=$sim_token PROVISIOND_OKTA_APP_ID=$app_id \
    node --import tsx src/cli/main.ts node >"$logs/node$n.log" 2>"$logs/node$n.err" &
  pids+=($!)
  echo "$!" >"$dir/node$n.pid"
done
for n in 1 2; do until grep -q "SCIM base URL" "$logs/node$n.err" 2>/dev/null; do sleep 0.2; done; done

cat <<EOT
provisiond local cluster is up (logs in $logs)
  etcd:      $endpoints
  MariaDB:   mysql://root@127.0.0.1:33306/app
  okta-sim:  http://127.0.0.1:8090   (Authorization: SSWS $sim_token, app $app_id)
  node-1:    SCIM http://127.0.0.1:8081/scim/v2/   admin http://127.0.0.1:9461/status   pid $(cat "$dir/node1.pid")
  node-2:    SCIM http://127.0.0.1:8082/scim/v2/   admin http://127.0.0.1:9462/status   pid $(cat "$dir/node2.pid")
  SCIM token: $token

Watch a failover (kill the primary while the load still streams, or no event times the new term):
  curl -s -X POST -H 'Authorization: SSWS $sim_token' -H 'Content-Type: application/json' \\
       -d '{"users":2000,"updates":1000,"perSecond":200,"prefix":"demo1"}' http://127.0.0.1:8090/sim/load
  curl -s localhost:9461/status | grep -E '"(role|term)"'; curl -s localhost:9462/status | grep -E '"(role|term)"'
  kill -9 <pid of the node whose role is primary>  # the standby takes over after the ${ttl} ms lease
  curl -s localhost:<the other node's admin port>/status   # role, term, failovers[0] with its durations
  (another load needs another "prefix", or its userNames clash with the first one's: 409 dead letters)
  curl -s -H 'Authorization: SSWS $sim_token' http://127.0.0.1:8090/sim/truth   # what the app should hold
Ctrl-C stops everything.
EOT
wait
