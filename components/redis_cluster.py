"""The sessions' Redis Cluster: namespace, one StatefulSet per zone, config, password, idempotent
bootstrap Job, Services, PDB and NetworkPolicies.

The official `redis` 7.x image runs with a config rendered here (`render_redis_conf`); the password
reaches the server through an `include` of a file mounted from the Secret, never through the
ConfigMap or the command line. `plan_layout` (components/redis_layout.py) decides how many pods run
in each zone and which master each replica follows, so that a replica is in another zone than its
master wherever the zones allow; the bootstrap Job (`render_bootstrap_script`) forms the cluster
with exactly that pairing, and every pod starts through `render_start_script`, which refreshes the
peers' addresses so that even a restart of every pod with new IPs finds the cluster again. The
integration tests run these same scripts against real `redis-server` processes.

Mesh: the pods are in the Istio mesh. The client port 6379 (clients, replication, bootstrap) goes
through the sidecar (mTLS); the cluster bus 16379 and the exporter port 9121 bypass it (pod
annotations) and are guarded by NetworkPolicy: bus from Redis pods only, metrics from the scraper only.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import podspec
from components.redis_layout import ClusterLayout, NodeSlot, plan_layout
from stacks.settings import (
    REDIS_BUS_PORT,
    REDIS_EXPORTER_PORT,
    REDIS_PORT,
    RedisSettings,
    image_tag,
)

APP = "redis-cluster"
HEADLESS_SERVICE = "redis-cluster-headless"
BOOTSTRAP = "redis-cluster-bootstrap"
CONFIG_MAP = "redis-cluster-config"
AUTH_SECRET = "redis-cluster-auth"  # noqa: S105 (a Secret's name)
PASSWORD_KEY = "password"  # noqa: S105 (a key name)
AUTH_CONF_KEY = "auth.conf"

REDIS_UID = 10379
CONF_DIR = "/etc/redis"
CONF_FILE = "redis.conf"
AUTH_DIR = "/etc/redis-auth"
SCRIPTS = {"start": "start.sh", "readiness": "readiness.sh", "liveness": "liveness.sh",
           "bootstrap": "bootstrap.sh"}
# Pod label naming the zone a pod's StatefulSet is pinned to (part of that StatefulSet's selector).
ZONE_LABEL = "aiwfe.io/redis-zone"
DATA_DIR = "/data"
AOF_DIR_NAME = "appendonlydir"
AOF_MANIFEST = "appendonly.aof.manifest"
# RDB snapshot points: (seconds, changes). Together with the AOF (fsync every second).
SAVE_RULES: tuple[tuple[int, int], ...] = ((3600, 1), (300, 100), (60, 10000))
MAXMEMORY_POLICY = "allkeys-lru"
# Facts for the policy pack (and for people): the intended cluster shape.
MASTERS_ANNOTATION = "aiwfe.io/redis-masters"
REPLICAS_ANNOTATION = "aiwfe.io/redis-replicas-per-master"
# An 8 GB RDB written on SIGTERM needs time; Redis saves on shutdown when save points exist.
TERMINATION_GRACE_SECONDS = 120
PROBE_TIMEOUT_SECONDS = 3
_PASSWORD = re.compile(r"^[A-Za-z0-9]{16,}$")


# ---------------------------------------------------------------- rendered files (pure functions)

@dataclass(frozen=True)
class RedisConfParams:
    """What `redis.conf` is made of; `conf_params(settings)` gives a stack's values."""

    maxmemory_bytes: int
    cluster_node_timeout_ms: int
    port: int = REDIS_PORT
    bus_port: int = REDIS_BUS_PORT
    data_dir: str = DATA_DIR
    auth_include: str = f"{AUTH_DIR}/{AUTH_CONF_KEY}"
    bind: str = "* -::*"
    maxmemory_policy: str = MAXMEMORY_POLICY
    save_rules: tuple[tuple[int, int], ...] = SAVE_RULES


def conf_params(settings: RedisSettings) -> RedisConfParams:
    return RedisConfParams(maxmemory_bytes=settings.maxmemory_bytes,
                           cluster_node_timeout_ms=settings.cluster_node_timeout_ms)


def render_redis_conf(p: RedisConfParams) -> str:
    """The `redis.conf` every node runs (no secret in it: the password comes from the include).

    Per-pod values are command-line arguments: `--cluster-announce-hostname` (the pod's stable name
    under the headless Service, so clients and redirects survive a new pod IP)."""
    saves = " ".join(f"{seconds} {changes}" for seconds, changes in p.save_rules)
    return f"""\
# Rendered by components/redis_cluster.py. No secret here: requirepass/masterauth come from the include.
bind {p.bind}
protected-mode yes
port {p.port}
tcp-keepalive 60
timeout 0
daemonize no
loglevel notice
logfile ""
dir {p.data_dir}

# Cluster: state on the persistent volume; redirects name hosts (the announced hostname), not pod IPs.
cluster-enabled yes
cluster-config-file {p.data_dir}/nodes.conf
cluster-port {p.bus_port}
cluster-node-timeout {p.cluster_node_timeout_ms}
cluster-preferred-endpoint-type hostname
# Sessions: the shards that are up keep serving when another shard has lost all its nodes.
cluster-require-full-coverage no
cluster-allow-reads-when-down no

# Persistence: AOF fsynced every second, and RDB snapshots for fast restarts and backups.
appendonly yes
appendfsync everysec
appenddirname "{AOF_DIR_NAME}"
# A cut-off AOF stops the server instead of being loaded short: start.sh decides what happens.
aof-load-truncated no
aof-use-rdb-preamble yes
auto-aof-rewrite-percentage 100
auto-aof-rewrite-min-size 64mb
save {saves}
dbfilename dump.rdb
stop-writes-on-bgsave-error yes

# Memory: the container limit leaves headroom above this for fork copy-on-write and buffers.
maxmemory {p.maxmemory_bytes}
maxmemory-policy {p.maxmemory_policy}

# Password for clients and for replication, from a file mounted from the Secret.
include {p.auth_include}
"""


def render_auth_conf(password: str) -> str:
    """The Secret-held include: the same password for clients (`requirepass`) and replicas (`masterauth`)."""
    if not _PASSWORD.fullmatch(password):
        raise ValueError("the Redis password must be at least 16 letters and digits")
    return f"requirepass {password}\nmasterauth {password}\n"


def render_bootstrap_script(shards: Sequence[tuple[str, Sequence[str]]], *,
                            attempts: int = 90, interval: str = "2") -> str:
    """A POSIX sh script that forms the cluster and converges it to the layout, idempotently.

    `shards` are `(master, replicas)` as `host:port` addresses: the pairing `plan_layout` made (each
    replica in another zone than its master). The script waits until every node answers. If every
    node is still alone (no known peer, no slot), it creates the cluster from the planned masters.
    A shard whose slots sit with an identity no node has any more (Redis never fails an identity
    whose address another node took) is taken over by the member that follows it. It waits until
    every slot is served (a promotion may be running). Then, shard by shard, it finds the node that
    holds the shard's slots now (the planned master, or a replica promoted after a failover) and
    makes every other member follow it: a member that is alone (never attached, or back with an
    empty volume) is added as its replica; a member that joined but holds no slot and follows
    nobody (an attachment interrupted after MEET) is told to replicate. Nodes flagged failed or
    without address that are no longer any member's identity (replaced by an empty volume) are
    forgotten on every node. It ends only when every node sees all planned nodes, all slots, one
    master per shard; a cluster already like that is left alone ("nothing to do"). A cluster whose
    shard count differs from the layout (masters changed after the first deploy) fails it:
    resharding is manual.

    A whole shard lost (no member holds its data) is never given up by itself: it fails, naming
    `REDIS_ADOPT_LOST_SHARDS=yes`, with which an operator says that data is gone for good. Then it
    first forgets every failed identity (their nodes, held by their start scripts, start as new
    empty ones) and gives the unserved slots to the lost shard's planned master, empty.

    Hosts are resolved with `getent ahostsv4` at each call (CLUSTER MEET needs IPs). The password
    comes from `REDISCLI_AUTH` in the environment."""
    if not shards or any(not master for master, _ in shards):
        raise ValueError("need at least one shard with a master")
    nodes = [master for master, _ in shards] + [r for _, replicas in shards for r in replicas]
    for node in nodes:
        if not re.fullmatch(r"[A-Za-z0-9.-]+:\d{1,5}", node):
            raise ValueError(f"bad node address {node!r}")
    if len(set(nodes)) != len(nodes):
        raise ValueError("a node appears twice in the shards")
    masters = shlex.quote(" ".join(master for master, _ in shards))
    pairs = shlex.quote(" ".join(f"{r}={master}" for master, replicas in shards for r in replicas))
    return f"""\
#!/bin/sh
# Rendered by components/redis_cluster.py: forms the Redis Cluster and makes each shard's members
# follow the node holding its slots (replicas in another zone). Idempotent: safe to run at any time.
set -euf
MASTERS={masters}
PAIRS={pairs}  # replica=master
ATTEMPTS={int(attempts)}
INTERVAL={shlex.quote(interval)}
: "${{REDISCLI_AUTH:?REDISCLI_AUTH must hold the Redis password}}"

say() {{ echo "bootstrap: $*"; }}
fail() {{ echo "bootstrap: $*" >&2; exit 1; }}
resolve() {{
  found=$(timeout 5 getent ahostsv4 "${{1%:*}}") || {{ echo "bootstrap: cannot resolve ${{1%:*}}" >&2; return 1; }}
  echo "${{found%%[[:space:]]*}}:${{1##*:}}"
}}
cli() {{
  address=$(resolve "$1") || return 1
  shift
  redis-cli --no-auth-warning -h "${{address%:*}}" -p "${{address##*:}}" "$@" | tr -d '\\r'
}}
field() {{ cli "$1" cluster info | sed -n "s/^$2://p"; }}
alone() {{ [ "$(field "$1" cluster_known_nodes)" = 1 ] && [ "$(field "$1" cluster_slots_assigned)" = 0 ]; }}
myself() {{ cli "$1" cluster nodes | grep myself; }}
retry() {{
  n=0
  until "$@"; do
    n=$((n + 1))
    [ "$n" -lt "$ATTEMPTS" ] || fail "gave up waiting for: $*"
    sleep "$INTERVAL"
  done
}}
answers() {{ [ "$(cli "$1" ping 2>/dev/null)" = PONG ]; }}
state_ok() {{ [ "$(field "$1" cluster_state 2>/dev/null)" = ok ]; }}
members() {{
  echo "$1"
  for pair in $PAIRS; do
    if [ "${{pair#*=}}" = "$1" ]; then echo "${{pair%%=*}}"; fi
  done
}}
# The id of the node holding the shard's slots: a member that is a master with slots, or whom a
# member follows.
leader_of() {{
  for member in $(members "$1"); do
    line=$(myself "$member") || continue
    set -- $line
    case $3 in
      *slave*) if [ "$4" != - ]; then echo "$4"; return 0; fi ;;
      *master*) if [ "$#" -ge 9 ]; then echo "$1"; return 0; fi ;;
    esac
  done
  return 1
}}
follows() {{ [ "$(cli "$1" cluster replicate "$2" 2>&1)" = OK ]; }}
leads() {{ set -- $(myself "$1"); case $3 in *master*) [ "$#" -ge 9 ] ;; *) false ;; esac; }}
# Whole: the node sees every planned node, every slot, the planned number of shards, and it is a
# replica or a master with slots.
whole() {{
  [ "$(field "$1" cluster_state)" = ok ] && [ "$(field "$1" cluster_known_nodes)" = "$COUNT" ] \\
    && [ "$(field "$1" cluster_slots_assigned)" = 16384 ] && [ "$(field "$1" cluster_size)" = "$SHARDS" ] || return 1
  set -- $(myself "$1")
  case $3 in *slave*) return 0 ;; esac
  [ "$#" -ge 9 ]
}}

NODES=$MASTERS
for pair in $PAIRS; do NODES="$NODES ${{pair%%=*}}"; done
COUNT=$(echo $NODES | wc -w)
SHARDS=$(echo $MASTERS | wc -w)
ADOPT=${{REDIS_ADOPT_LOST_SHARDS:-no}}
if [ "$ADOPT" = yes ]; then
  # The operator says the data of every shard that is down is gone for good (troubleshooting,
  # "a whole shard lost"): forget the failed identities, so their nodes start as new empty ones.
  dead=""
  for node in $NODES; do
    dead=$(cli "$node" cluster nodes 2>/dev/null | awk '$3 ~ /(^|,)fail(,|$)/ {{ print $1 }}') || continue
    if [ -n "$dead" ]; then break; fi
  done
  for id in $dead; do
    say "REDIS_ADOPT_LOST_SHARDS: forgetting the failed identity $id on every node"
    for node in $NODES; do cli "$node" cluster forget "$id" >/dev/null 2>&1 || true; done
  done
fi
for node in $NODES; do retry answers "$node"; done

changed=no
fresh=yes
for node in $NODES; do
  if ! alone "$node"; then fresh=no; break; fi
done
if [ "$fresh" = yes ]; then
  addresses=""
  for master in $MASTERS; do addresses="$addresses $(resolve "$master")"; done
  say "creating the cluster from the masters$addresses"
  redis-cli --no-auth-warning --cluster create $addresses --cluster-replicas 0 --cluster-yes
  changed=yes
  retry state_ok "${{MASTERS%% *}}"
fi
anchor=""
for node in $NODES; do
  if ! alone "$node"; then anchor=$node; break; fi
done
[ -n "$anchor" ] || fail "no node is part of a cluster"

if [ "$ADOPT" = yes ]; then
  lost=""
  for master in $MASTERS; do leader_of "$master" >/dev/null || lost="$lost $master"; done
  if [ -n "$lost" ]; then
    set -- $lost
    [ "$#" = 1 ] || fail "$# shards are lost; REDIS_ADOPT_LOST_SHARDS gives the unserved slots to one"
    alone "$1" || fail "$1 should be alone and empty to take the lost shard's slots"
    ranges=$(cli "$anchor" cluster nodes | awk '
      length($1) == 40 {{ for (i = 9; i <= NF; i++) {{
        if ($i ~ /^\\[/) continue
        n = split($i, r, "-"); low = r[1] + 0; high = (n > 1 ? r[2] : r[1]) + 0
        for (slot = low; slot <= high; slot++) used[slot] = 1 }} }}
      END {{ start = -1; for (slot = 0; slot <= 16384; slot++) {{
        if (slot < 16384 && !(slot in used)) {{ if (start < 0) start = slot }}
        else if (start >= 0) {{ printf "%d %d ", start, slot - 1; start = -1 }} }} }}')
    [ -n "$ranges" ] || fail "no unserved slot to give to $1"
    at=$(resolve "$anchor")
    bus=$(myself "$anchor" | awk '{{ split($2, a, "@"); split(a[2], b, ","); print b[1] }}')
    cli "$1" cluster meet "${{at%:*}}" "${{at##*:}}" "$bus" >/dev/null
    met() {{ [ "$(field "$1" cluster_known_nodes)" != 1 ]; }}
    retry met "$1"
    [ "$(cli "$1" cluster addslotsrange $ranges)" = OK ] || fail "$1 refused the slots $ranges"
    cli "$1" cluster bumpepoch >/dev/null
    say "REDIS_ADOPT_LOST_SHARDS: $1 serves the lost slots ($ranges), empty"
    changed=yes
  fi
fi

# Gossip spreads the shards within seconds of a create; a count that stays wrong is a changed layout.
n=0
until [ "$(field "$anchor" cluster_size)" = "$SHARDS" ] && state_ok "$anchor"; do
  n=$((n + 1))
  [ "$n" -lt "$ATTEMPTS" ] || fail "the cluster has $(field "$anchor" cluster_size) shards, the layout plans \\
$SHARDS: resharding is manual (docs/upgrades.md)"
  sleep "$INTERVAL"
done

# Every node answers by now, so an identity none of them has is gone for good.
current_ids() {{
  for node in $NODES; do
    line=$(myself "$node") || fail "cannot read CLUSTER NODES of $node"
    echo "${{line%% *}}"
  done
}}
ids=" $(current_ids | tr '\\n' ' ') "
[ "$(echo $ids | wc -w)" = "$COUNT" ] || fail "cannot read every node's identity"
# A shard whose slots sit with a gone identity (a master whose volume was lost and that came back
# as another node without start.sh; Redis never fails an identity whose address another node took
# over) is served again by the member that still follows it.
for master in $MASTERS; do
  leader=$(leader_of "$master") || continue
  case "$ids" in *" $leader "*) continue ;; esac
  for member in $(members "$master"); do
    set -- $(myself "$member")
    case $3 in *slave*) [ "$4" = "$leader" ] || continue ;; *) continue ;; esac
    say "the shard of $master is held by $leader, which no node is any more: $member takes over"
    cli "$member" cluster failover takeover >/dev/null
    retry leads "$member"
    changed=yes
    break
  done
done

# A master that just failed leaves its slots unserved until its replica takes over (node timeout
# and an election): wait for that rather than attach nodes to a cluster that is still moving.
n=0
until [ "$(field "$anchor" cluster_slots_ok)" = 16384 ]; do
  n=$((n + 1))
  [ "$n" -lt "$ATTEMPTS" ] || fail "$((16384 - $(field "$anchor" cluster_slots_ok))) slots stay unserved: a \\
whole shard is down; if its data is gone for good, run this with REDIS_ADOPT_LOST_SHARDS=yes \\
(docs/troubleshooting.md#redis-failover)"
  sleep "$INTERVAL"
done

# add-node refuses a node that met the cluster meanwhile (its own start script rejoining it).
attach() {{
  redis-cli --no-auth-warning --cluster add-node "$(resolve "$1")" "$(resolve "$anchor")" \\
    --cluster-slave --cluster-master-id "$2" && return 0
  sleep "$INTERVAL"
  ! alone "$1"
}}

for master in $MASTERS; do
  leader=$(leader_of "$master") || fail "no member of the shard of $master holds its slots"
  for member in $(members "$master"); do
    if alone "$member"; then
      say "attaching $member to the shard of $master ($leader)"
      retry attach "$member" "$leader"
      changed=yes
    fi
    line=$(myself "$member") || fail "cannot read CLUSTER NODES of $member"
    set -- $line
    case $3 in
      *master*) if [ "$#" -lt 9 ]; then
          say "$member joined without slots and follows nobody: making it follow $leader"
          retry follows "$member" "$leader"
          changed=yes
        fi ;;
    esac
  done
done

ids=" $(current_ids | tr '\\n' ' ') "
[ "$(echo $ids | wc -w)" = "$COUNT" ] || fail "cannot read every node's identity"
ghosts=$(cli "$anchor" cluster nodes | while read -r id address flags rest; do
  # Gone for good: failed, or address taken over by a node with another identity (noaddr).
  case "$flags" in *noaddr*) ;; *fail\\?*) continue ;; *fail*) ;; *) continue ;; esac
  case "$ids" in *" $id "*) continue ;; esac
  echo "$id"
done)
for ghost in $ghosts; do
  say "forgetting $ghost: failed, and no planned node has that identity any more"
  for node in $NODES; do cli "$node" cluster forget "$ghost" >/dev/null || true; done
  changed=yes
done

for node in $NODES; do retry whole "$node"; done
if [ "$changed" = no ]; then
  say "the cluster already has every node: nothing to do"
else
  say "cluster formed"
fi
"""


def render_start_script() -> str:
    """The Redis container's entry point: make sure the node never serves data it lost, refresh the
    nodes' addresses in `nodes.conf`, then exec `redis-server` with the container's arguments.

    **Data it cannot trust.** Before starting, the AOF is checked with `redis-check-aof` (the
    server itself refuses a damaged one: `aof-load-truncated no`). A node whose data is damaged or
    missing, or that has no `nodes.conf` while its peers know its hostname (a volume wiped or
    replaced, at the same IP or a new one), is the problem the cluster cannot see: started, it would
    answer at the old address as an empty master and its replica would full-sync from it. So:
    - if it was a master with slots, it does not start until another node holds those slots (its
      replica takes over once the old identity stops answering for `cluster-node-timeout`), up to
      `REDIS_TAKEOVER_WAIT_SECONDS`; then it drops its data and identity and starts as a new node
      that joins the shard as a replica (a background step: MEET a peer, REPLICATE the shard's
      master, FORGET the old identity everywhere). If nobody takes over in time (the whole shard
      is lost), it repairs the AOF (`redis-check-aof --fix`) and serves what is left;
    - a replica (or a master without slots) drops its damaged data and keeps its identity: it
      full-syncs from its master.
    Peers are `REDIS_PEERS` (`host:port`, every node); the decision is logged.

    **Addresses.** `nodes.conf` records every node by IP (the cluster bus needs one) next to its
    announced hostname. When every pod restarts at once (a node-pool upgrade, a zone coming back),
    all those IPs are stale and no node can reach another. Before starting, the node's own line
    gets `POD_IP` (the downward API) and each peer whose hostname resolves gets its current IP. If
    no peer resolves yet (pods starting together), it retries for up to `REDIS_PEER_WAIT_SECONDS`;
    a peer still unresolved keeps its old IP and is corrected once it starts and reaches a node it
    knows (Redis takes a sender's address from its PING on the bus; that holds because the bus port
    bypasses the Istio sidecar, which would otherwise present 127.0.0.6 as the source). The file is
    replaced only when something changed, after an fsync, never half-written."""
    return f"""\
#!/bin/sh
# Rendered by components/redis_cluster.py. REDIS_DATA_DIR defaults to {DATA_DIR}, REDIS_PORT to {REDIS_PORT}.
set -euf
data=${{REDIS_DATA_DIR:-{DATA_DIR}}}
conf=${{REDIS_NODES_CONF:-$data/nodes.conf}}
aof_dir=$data/{AOF_DIR_NAME}
manifest=$aof_dir/{AOF_MANIFEST}
port=${{REDIS_PORT:-{REDIS_PORT}}}
local_host=${{REDIS_LOCAL_HOST:-127.0.0.1}}
peers=${{REDIS_PEERS:-}}
wait_seconds=${{REDIS_PEER_WAIT_SECONDS:-60}}
takeover_seconds=${{REDIS_TAKEOVER_WAIT_SECONDS:-300}}
# The node timeout from the config file (the first argument), in seconds, at least 1.
node_timeout_ms=$(awk '$1 == "cluster-node-timeout" {{ print $2 }}' "${{1:-/dev/null}}" 2>/dev/null || true)
force_after=$(( 3 * (${{node_timeout_ms:-15000}} + 999) / 1000 ))

say() {{ echo "start: $*" >&2; }}

hostname=""
previous=""
for arg in "$@"; do
  if [ "$previous" = --cluster-announce-hostname ]; then hostname=$arg; fi
  previous=$arg
done

resolve() {{
  found=$(timeout 2 getent ahostsv4 "${{1%:*}}" 2>/dev/null) || return 1
  echo "${{found%%[[:space:]]*}}:${{1##*:}}"
}}
cli() {{
  address=$1
  shift
  timeout 5 redis-cli --no-auth-warning -h "${{address%:*}}" -p "${{address##*:}}" "$@" 2>/dev/null | tr -d '\\r'
}}
# CLUSTER NODES lines only (an error reply or nothing gives nothing).
nodes_of() {{ cli "$1" cluster nodes | awk 'length($1) == 40 && $1 ~ /^[0-9a-f]+$/'; }}
# "<id> <flags> <first slot of its shard>" of the node announcing hostname $1, from CLUSTER NODES on stdin.
record_of() {{
  awk -v host="$1" '
    length($1) == 40 {{
      split($2, parts, ","); name[NR] = parts[2]; id[NR] = $1; flags[NR] = $3; master[NR] = $4
      for (i = 9; i <= NF; i++) if ($i !~ /^\\[/) {{ split($i, range, "-"); first[$1] = range[1]; break }}
    }}
    END {{
      # A live record wins over a ghost (failed, or its address taken by another node).
      for (n in id) if (name[n] == host && (pick == "" || flags[pick] ~ /fail|noaddr/)) pick = n
      if (pick == "") exit 1
      shard = (master[pick] == "-") ? first[id[pick]] : first[master[pick]]
      print id[pick], flags[pick], shard
    }}'
}}
# "<id> <flags>" of the master serving slot $1, from CLUSTER NODES on stdin.
owner_of() {{
  awk -v slot="$1" '
    length($1) == 40 {{
      for (i = 9; i <= NF; i++) {{
        if ($i ~ /^\\[/) continue
        n = split($i, range, "-"); low = range[1] + 0; high = (n > 1 ? range[2] : range[1]) + 0
        if (slot + 0 >= low && slot + 0 <= high) {{ print $1, $3; exit }}
      }}
    }}'
}}
# The first peer that answers CLUSTER NODES: prints its address, then its view.
peer_view() {{
  for peer in $peers; do
    [ "${{peer%:*}}" != "$hostname" ] || continue
    address=$(resolve "$peer") || continue
    view=$(nodes_of "$address")
    if [ -n "$view" ]; then printf '%s\\n%s\\n' "$address" "$view"; return 0; fi
  done
  return 1
}}
# Whether a live node other than $1 serves slot $2 (a peer's view).
# 0: a live node other than $1 serves slot $2; 2: the peers forgot $1 (its shard was given up:
# the bootstrap's REDIS_ADOPT_LOST_SHARDS); 1: not yet.
taken_over() {{
  view=$(peer_view) || return 1
  printf '%s\\n' "$view" | sed 1d | awk -v id="$1" '$1 == id {{ known = 1 }} END {{ exit !known }}' || return 2
  set -- "$1" $(printf '%s\\n' "$view" | sed 1d | owner_of "$2")
  [ "$#" = 3 ] && [ "$2" != "$1" ] && case $3 in *fail*|*noaddr*|*handshake*) false ;; *) true ;; esac
}}
# After every node restarted at once no replica has been linked to its master yet, and Redis
# refuses such a replica the failover (cluster-replica-validity-factor). A replica that holds a
# complete copy (not syncing, not loading, keys in it) is told to take over: CLUSTER FAILOVER
# TAKEOVER needs no vote. An empty or syncing replica never is: it would lose what the old master
# had acknowledged.
force_takeover() {{
  view=$(peer_view) || return 1
  replica=$(printf '%s\\n' "$view" | sed 1d | awk -v id="$1" \
    '$4 == id && $3 ~ /slave/ && $3 !~ /fail|noaddr|handshake/ {{ split($2, a, "@"); print a[1]; exit }}')
  [ -n "$replica" ] || return 1
  syncing=$(cli "$replica" info replication | sed -n 's/^master_sync_in_progress://p')
  loading=$(cli "$replica" info persistence | sed -n 's/^loading://p')
  keys=$(cli "$replica" dbsize)
  if [ "$syncing" != 0 ] || [ "$loading" != 0 ] || [ "${{keys:-0}}" -lt 1 ] 2>/dev/null; then
    say "its replica $replica has no complete copy (syncing ${{syncing:-?}}, loading ${{loading:-?}}," \
      "keys ${{keys:-?}})"
    return 1
  fi
  say "no failover after ${{waited}}s: asking its replica $replica ($keys keys) to take over"
  [ "$(cli "$replica" cluster failover takeover)" = OK ]
}}
# Returns as taken_over does; 1 after REDIS_TAKEOVER_WAIT_SECONDS.
wait_takeover() {{
  say "$1 served slot $2 and its data is gone: not starting until another node serves it (up to ${{takeover_seconds}}s)"
  waited=0
  forced=no
  while :; do
    outcome=0
    taken_over "$1" "$2" || outcome=$?
    [ "$outcome" = 1 ] || break
    [ "$waited" -lt "$takeover_seconds" ] || return 1
    # Three node timeouts: an ordinary failover has happened by then.
    if [ "$forced" = no ] && [ "$waited" -ge "$force_after" ] && force_takeover "$1"; then forced=yes; fi
    sleep 1
    waited=$((waited + 1))
  done
  if [ "$outcome" = 2 ]; then
    say "the cluster forgot $1: its shard was given up, starting as a new empty node"
    return 2
  fi
  say "slot $2 is served by another node after ${{waited}}s"
}}
drop_data() {{ rm -rf "$aof_dir" "$data/dump.rdb"; }}
# Background: once the new node answers, it joins the shard of slot $2 as a replica and the old
# identity $1 is forgotten on every node.
join() {{
  old=$1
  slot=$2
  me="$local_host:$port"
  tries=0
  until [ "$(cli "$me" ping)" = PONG ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 3000 ] || {{ say "join: the server never answered"; return 1; }}
    kill -0 "$$" 2>/dev/null || return 0
    sleep 0.2
  done
  tries=0
  while :; do
    tries=$((tries + 1))
    [ "$tries" -lt 120 ] || {{ say "join: gave up; the bootstrap Job attaches this node"; return 1; }}
    kill -0 "$$" 2>/dev/null || return 0  # the server (this shell's pid after exec) is gone
    view=$(peer_view) || {{ sleep 1; continue; }}
    peer=$(printf '%s\\n' "$view" | sed -n 1p)
    leader=$(printf '%s\\n' "$view" | sed 1d | owner_of "$slot")
    case $leader in *fail*|*noaddr*) leader="" ;; esac  # a dead master: wait for its successor
    leader=${{leader%% *}}
    bus=$(printf '%s\\n' "$view" | awk '$3 ~ /myself/ {{ split($2, a, "@"); split(a[2], b, ","); print b[1] }}')
    if [ -z "$leader" ] || [ "$leader" = "$old" ] || [ -z "$bus" ]; then sleep 1; continue; fi
    if cli "$me" cluster info | grep -qx 'cluster_known_nodes:1'; then
      cli "$me" cluster meet "${{peer%:*}}" "${{peer##*:}}" "$bus" >/dev/null
    fi
    if [ "$(cli "$me" cluster replicate "$leader")" = OK ]; then break; fi
    sleep 0.5
  done
  for peer in $peers; do
    address=$(resolve "$peer") || continue
    cli "$address" cluster forget "$old" >/dev/null || true
  done
  say "joined the shard of slot $slot as a replica of $leader; forgot the old identity $old"
}}

# Prints nodes.conf with fresh IPs; exits 3 when no peer resolved. A function of its own: its
# `set --` leaves the script's arguments (redis-server's) alone.
refreshed() {{
  peers=0
  resolved=0
  while IFS= read -r line || [ -n "$line" ]; do
    set -- $line
    # Line: <id> <ip>:<port>@<bus>[,<hostname>[,<aux>...]] <flags> ...; the last line is "vars ...".
    if [ "$#" -ge 3 ] && [ "$1" != vars ]; then
      address=$2
      endpoint=${{address%%@*}}
      rest=${{address#"$endpoint"}}
      host=${{rest#*,}}
      host=${{host%%,*}}
      ip=""
      case $3 in
        *myself*) ip=${{POD_IP:-}} ;;
        *) peers=$((peers + 1))
           if [ "$host" != "$rest" ] && [ -n "$host" ] && found=$(timeout 2 getent ahostsv4 "$host"); then
             ip=${{found%%[[:space:]]*}}
             resolved=$((resolved + 1))
           fi ;;
      esac
      if [ -n "$ip" ]; then
        id=$1
        shift 2
        line="$id $ip:${{endpoint##*:}}$rest $*"
      fi
    fi
    printf '%s\\n' "$line"
  done < "$conf"
  [ "$peers" = 0 ] || [ "$resolved" -gt 0 ] || return 3
}}

rejoin_id=""
rejoin_slot=""
state=none
report=""
if [ -f "$manifest" ]; then
  if report=$(redis-check-aof "$manifest" 2>&1); then state=ok; else state=damaged; fi
elif [ -s "$conf" ]; then
  state=missing
fi

if [ "$state" != ok ] && [ -s "$conf" ]; then
  read -r my_id my_flags my_slot <<EOF
$(awk 'length($1) == 40 && $3 ~ /myself/ {{
  for (i = 9; i <= NF; i++) if ($i !~ /^\\[/) {{ split($i, range, "-"); slot = range[1]; break }}
  print $1, $3, slot; exit }}' "$conf")
EOF
  say "the data in $data is $state (node ${{my_id:-?}}, ${{my_flags:-?}}${{my_slot:+, slot $my_slot}})"
  if [ "$state" = damaged ]; then printf '%s\\n' "$report" | tail -n 3 >&2; fi
  case "${{my_flags:-}}" in
    *master*)
      if [ -n "${{my_slot:-}}" ]; then
        outcome=0
        wait_takeover "$my_id" "$my_slot" || outcome=$?
        if [ "$outcome" != 1 ]; then
          drop_data
          rm -f "$conf"
        fi
        if [ "$outcome" = 0 ]; then
          say "dropped the data and the identity $my_id: joining the shard again as a new replica"
          rejoin_id=$my_id
          rejoin_slot=$my_slot
        elif [ "$outcome" = 2 ]; then
          :
        elif [ "$state" = damaged ]; then
          say "no other node serves slot $my_slot: repairing the AOF and serving what is left"
          echo y | redis-check-aof --fix "$manifest" >&2 || true
          redis-check-aof "$manifest" >/dev/null 2>&1 || {{ say "the AOF cannot be repaired: dropped"; drop_data; }}
        else
          say "no other node serves slot $my_slot: starting without the lost data"
        fi
      else
        drop_data
      fi ;;
    *) say "dropping the data: it full-syncs from its master"; drop_data ;;
  esac
fi

if [ ! -s "$conf" ] && [ -z "$rejoin_id" ] && [ -n "$hostname" ] && [ -n "$peers" ]; then
  # No identity: a first start, or a lost volume. Is this hostname a member of a running cluster?
  record=""
  waited=0
  while :; do
    resolvable=no
    answered=no
    for peer in $peers; do
      [ "${{peer%:*}}" != "$hostname" ] || continue
      address=$(resolve "$peer") || continue
      resolvable=yes
      view=$(nodes_of "$address")
      [ -n "$view" ] || continue
      answered=yes
      if record=$(printf '%s\\n' "$view" | record_of "$hostname"); then break 2; fi
    done
    # Every peer that answered is without this node, or no peer exists yet: a first start.
    if [ "$answered" = yes ] || [ "$resolvable" = no ] || [ "$waited" -ge "$wait_seconds" ]; then break; fi
    sleep 2
    waited=$((waited + 2))
  done
  if [ -n "$record" ]; then
    read -r old_id old_flags old_slot <<EOF
$record
EOF
    say "the cluster knows $hostname as $old_id ($old_flags) and this node has no nodes.conf: its volume was lost"
    drop_data
    if [ -z "${{old_slot:-}}" ]; then
      say "its shard serves no slot: starting empty, the bootstrap Job attaches it"
    else
      outcome=0
      case $old_flags in *master*) wait_takeover "$old_id" "$old_slot" || outcome=$? ;; esac
      if [ "$outcome" = 1 ]; then
        say "no other node serves slot $old_slot: the whole shard is lost (docs/troubleshooting.md#redis-failover)"
        exit 1
      fi
      if [ "$outcome" = 0 ]; then
        rejoin_id=$old_id
        rejoin_slot=$old_slot
      fi
    fi
  fi
fi

if [ -s "$conf" ]; then
  waited=0
  until refreshed > "$conf.refresh"; do
    if [ "$waited" -ge "$wait_seconds" ]; then
      echo "start: no peer in $conf resolves after ${{wait_seconds}}s; starting with the recorded IPs" >&2
      break
    fi
    sleep 2
    waited=$((waited + 2))
  done
  # Same line count (a full disk would have cut the copy short) and a real change: replace.
  if [ "$(grep -c '' "$conf.refresh")" = "$(grep -c '' "$conf")" ] && ! cmp -s "$conf.refresh" "$conf"; then
    sync "$conf.refresh"
    mv "$conf.refresh" "$conf"
  else
    rm -f "$conf.refresh"
  fi
fi
if [ -n "$rejoin_id" ]; then join "$rejoin_id" "$rejoin_slot" & fi
exec redis-server "$@"
"""


def render_readiness_script() -> str:
    """Ready when the node answers and either is still fresh (before the bootstrap forms the
    cluster) or sees the cluster ok and, as a replica, has its link to the master up. A rolling
    update waits on this, so it never restarts the next node while the cluster is recovering."""
    return """\
#!/bin/sh
# Rendered by components/redis_cluster.py. Needs REDISCLI_AUTH; REDIS_PORT defaults to 6379.
set -eu
port=${REDIS_PORT:-6379}
cli() { redis-cli --no-auth-warning -e -p "$port" "$@" | tr -d '\\r'; }
[ "$(cli ping)" = PONG ] || exit 1
info=$(cli cluster info)
known=$(echo "$info" | sed -n 's/^cluster_known_nodes://p')
[ "$known" = 1 ] && exit 0
[ "$(echo "$info" | sed -n 's/^cluster_state://p')" = ok ] || exit 1
replication=$(cli info replication)
if [ "$(echo "$replication" | sed -n 's/^role://p')" = slave ]; then
  [ "$(echo "$replication" | sed -n 's/^master_link_status://p')" = up ] || exit 1
fi
exit 0
"""


def render_liveness_script() -> str:
    """Alive when the server answers PING, including while it loads its data set (LOADING)."""
    return """\
#!/bin/sh
# Rendered by components/redis_cluster.py. Needs REDISCLI_AUTH; REDIS_PORT defaults to 6379.
reply=$(redis-cli --no-auth-warning -p "${REDIS_PORT:-6379}" ping 2>&1 | tr -d '\\r')
case "$reply" in
  PONG|LOADING*) exit 0 ;;
  *) echo "$reply"; exit 1 ;;
esac
"""


def layout(settings: RedisSettings, zones: Sequence[str]) -> ClusterLayout:
    """The stack's layout: its masters and replicas over the cluster's zones."""
    return plan_layout(tuple(zones), settings.masters, settings.replicas_per_master)


def statefulset_name(zone: str) -> str:
    return f"{APP}-{NodeSlot(zone, 0).zone_suffix}"


def pod_host(slot: NodeSlot, namespace: str) -> str:
    """A pod's stable DNS name under the headless Service (also its announced hostname)."""
    return f"{statefulset_name(slot.zone)}-{slot.ordinal}.{HEADLESS_SERVICE}.{namespace}.svc.cluster.local"


def node_address(slot: NodeSlot, namespace: str) -> str:
    return f"{pod_host(slot, namespace)}:{REDIS_PORT}"


def seed_addresses(settings: RedisSettings, zones: Sequence[str]) -> list[str]:
    """Every node's stable address on the client port (cluster clients take several seeds)."""
    return [node_address(slot, settings.namespace) for slot in layout(settings, zones).nodes]


def client_url(settings: RedisSettings, zones: Sequence[str]) -> str:
    """REDIS_URL for cluster clients: `redis://seed1:6379,seed2:6379,...` (no password)."""
    return "redis://" + ",".join(seed_addresses(settings, zones))


def bootstrap_shards(settings: RedisSettings, zones: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The layout's shards as addresses, for `render_bootstrap_script`."""
    return [(node_address(shard.master, settings.namespace),
             [node_address(r, settings.namespace) for r in shard.replicas])
            for shard in layout(settings, zones).shards]


# ---------------------------------------------------------------- the component

@dataclass(frozen=True)
class RedisClusterArgs:
    """What the Redis cluster needs from the stack: its settings and who may connect."""

    settings: RedisSettings
    zones: tuple[str, ...]
    """The cluster's zones: one StatefulSet per zone, and replicas placed in another zone than their master."""
    namespace_labels: Mapping[str, str]
    """Mesh injection and Pod Security labels for the namespace this component creates."""
    client_namespace: str
    client_pod_labels: Mapping[str, str]
    """The only pods allowed to reach the client port from outside the namespace (the WebSocket service)."""
    monitoring_namespace: str
    scraper_labels: Mapping[str, str] | None
    istiod_namespace: str
    protect: bool
    """Prod: StatefulSets protected (a `pulumi up` can never delete session data by accident)."""
    require_zone_spread: bool
    """Prod: each StatefulSet is required to run in its zone; staging only prefers it."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class RedisCluster(pulumi.ComponentResource):
    """A Redis Cluster (masters x (1 + replicas)) in its own namespace, one StatefulSet per zone,
    formed by an idempotent Job that gives every master a replica in another zone.

    Outputs: `namespace`, `client_url`, `seed_addresses`, `password` (secret), `password_secret_name`,
    `password_secret_key`, `service_account`, `client_port`, `bus_port`, and the layout's
    `node_count`, `master_count`, `replicas_per_master` (plain numbers, for alert expressions).
    """

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:RedisCluster", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        object_labels = podspec.labels(APP, "session-store")
        match = podspec.selector_labels(APP)
        pod_labels = podspec.labels(APP, "session-store", image_tag(s.image))

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": s.namespace,
                      "labels": {**podspec.labels(s.namespace, "namespace"), **args.namespace_labels}},
            # Deleting the namespace would delete the PVCs with it: protected like the StatefulSet.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        ns = namespace.metadata["name"]

        # Letters and digits only: safe in redis.conf, in URLs and in shell, and 32 of them is ~190 bits.
        generated = random.RandomPassword(
            f"{name}-password", length=32, special=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]))
        password = pulumi.Output.secret(generated.result)
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=podspec.metadata(AUTH_SECRET, ns, object_labels),
            type="Opaque",
            string_data={PASSWORD_KEY: password,
                         AUTH_CONF_KEY: pulumi.Output.secret(password.apply(render_auth_conf))},
            opts=child,
        )

        conf = render_redis_conf(conf_params(s))
        scripts = {
            SCRIPTS["start"]: render_start_script(),
            SCRIPTS["readiness"]: render_readiness_script(),
            SCRIPTS["liveness"]: render_liveness_script(),
        }
        # The bootstrap too: an operator runs it from a Redis pod when a whole shard is lost
        # (docs/troubleshooting.md#redis-failover, REDIS_ADOPT_LOST_SHARDS=yes).
        scripts[SCRIPTS["bootstrap"]] = render_bootstrap_script(bootstrap_shards(s, args.zones))
        config_data = {CONF_FILE: conf, **scripts}
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=podspec.metadata(CONFIG_MAP, ns, object_labels), data=config_data,
            opts=child)
        checksum = hashlib.sha256(json.dumps(config_data, sort_keys=True).encode()).hexdigest()[:16]

        account = podspec.service_account(f"{name}-service-account", APP, ns, object_labels, child)
        bootstrap_account = podspec.service_account(
            f"{name}-bootstrap-service-account", BOOTSTRAP, ns, podspec.labels(BOOTSTRAP, "session-store"), child)

        headless = k8s.core.v1.Service(
            f"{name}-headless-service",
            metadata=podspec.metadata(HEADLESS_SERVICE, ns, object_labels),
            spec={
                "clusterIP": "None",
                # DNS names exist before readiness: the nodes and the bootstrap find each other early.
                "publishNotReadyAddresses": True,
                "selector": dict(match),
                "ports": [_tcp_port("tcp-redis", REDIS_PORT), _tcp_port("tcp-redis-bus", REDIS_BUS_PORT),
                          {**_tcp_port("http-metrics", REDIS_EXPORTER_PORT), "appProtocol": "http"}],
            },
            opts=child,
        )
        podspec.cluster_service(f"{name}-client-service", APP, ns, object_labels, match,
                                [_tcp_port("tcp-redis", REDIS_PORT)], child)

        plan = layout(s, args.zones)
        # One zone after another: a PDB does not limit rollouts, and zones rolling at once could
        # restart a master and its replica together. Pulumi waits for each StatefulSet to be ready
        # (the readiness script: cluster ok, replica synced) before it touches the next zone.
        statefulsets: list[k8s.apps.v1.StatefulSet] = []
        for zone, count in zip(plan.zones, plan.pods_per_zone, strict=True):
            if count:
                statefulsets.append(self._statefulset(
                    name, args, ns, zone, count, object_labels, match, pod_labels, account, secret, config_map,
                    [headless, *statefulsets[-1:]], checksum))
        # One budget over every zone's pods: at most one Redis node evicted at a time, cluster-wide.
        podspec.disruption_budget(f"{name}-disruption-budget", APP, ns, object_labels, match, opts=child)
        self._network_policies(name, args, ns, object_labels, match)
        self._bootstrap(name, args, ns, bootstrap_account, secret, statefulsets)

        self.namespace = ns
        self.client_url = pulumi.Output.from_input(client_url(s, args.zones))
        self.seed_addresses = pulumi.Output.from_input(seed_addresses(s, args.zones))
        self.password = password
        self.password_secret_name = secret.metadata["name"]
        self.password_secret_key = pulumi.Output.from_input(PASSWORD_KEY)
        self.service_account = account.metadata["name"]
        self.bootstrap_service_account = bootstrap_account.metadata["name"]
        self.client_port = pulumi.Output.from_input(REDIS_PORT)
        self.bus_port = pulumi.Output.from_input(REDIS_BUS_PORT)
        # Plain numbers (known at render time): alert expressions compare the cluster with them.
        self.node_count = len(plan.nodes)
        self.master_count = len(plan.shards)
        self.replicas_per_master = s.replicas_per_master
        self.register_outputs({
            "namespace": self.namespace,
            "client_url": self.client_url,
            "seed_addresses": self.seed_addresses,
            "password": self.password,
            "password_secret_name": self.password_secret_name,
            "password_secret_key": self.password_secret_key,
            "service_account": self.service_account,
            "bootstrap_service_account": self.bootstrap_service_account,
            "client_port": self.client_port,
            "bus_port": self.bus_port,
            "node_count": self.node_count,
            "master_count": self.master_count,
            "replicas_per_master": self.replicas_per_master,
        })

    # ------------------------------------------------------------ pieces

    def _statefulset(self, name: str, args: RedisClusterArgs, ns: Any, zone: str, pods: int,
                     object_labels: dict[str, str], match: dict[str, str], pod_labels: dict[str, str],
                     account: Any, secret: Any, config_map: Any, after: list[pulumi.Resource],
                     checksum: str) -> k8s.apps.v1.StatefulSet:
        """The `pods` nodes of one zone; their pod names are what `plan_layout` paired."""
        s = args.settings
        suffix = NodeSlot(zone, 0).zone_suffix
        zone_match = {**match, ZONE_LABEL: suffix}
        auth_env = {"name": "REDISCLI_AUTH",
                    "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}}
        redis = {
            "name": "redis",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            # start.sh refreshes the peers' addresses in nodes.conf, then execs redis-server with these args.
            "command": ["sh", f"{CONF_DIR}/{SCRIPTS['start']}"],
            "args": [f"{CONF_DIR}/{CONF_FILE}", "--cluster-announce-hostname",
                     f"$(POD_NAME).{HEADLESS_SERVICE}.$(POD_NAMESPACE).svc.cluster.local"],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                # start.sh writes it into the node's own line of nodes.conf.
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                # start.sh asks these whether the cluster knows this node (a lost volume) and who
                # serves its shard now.
                {"name": "REDIS_PEERS", "value": " ".join(seed_addresses(s, args.zones))},
                auth_env,
            ],
            "ports": [{"name": "tcp-redis", "containerPort": REDIS_PORT, "protocol": "TCP"},
                      {"name": "tcp-redis-bus", "containerPort": REDIS_BUS_PORT, "protocol": "TCP"}],
            # Requests equal limits (Guaranteed QoS): a session store is the last thing to evict.
            "resources": {"requests": {"cpu": s.cpu_request, "memory": s.memory_limit},
                          "limits": {"cpu": s.cpu_limit, "memory": s.memory_limit}},
            # Loading a large AOF at start answers LOADING: allowed for up to 10 minutes.
            "startupProbe": _exec_probe(SCRIPTS["liveness"], period=5, failures=120),
            "livenessProbe": _exec_probe(SCRIPTS["liveness"], period=10, failures=3),
            "readinessProbe": _exec_probe(SCRIPTS["readiness"], period=5, failures=2),
            "volumeMounts": [
                {"name": "data", "mountPath": DATA_DIR},
                {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
                {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
                podspec.tmp_mount(),
            ],
        }
        exporter = {
            "name": "metrics",
            "image": s.exporter_image,
            "imagePullPolicy": "IfNotPresent",
            "env": [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{REDIS_PORT}"},
                {"name": "REDIS_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}},
                {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{REDIS_EXPORTER_PORT}"},
            ],
            "ports": [{"name": "http-metrics", "containerPort": REDIS_EXPORTER_PORT, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "25m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "livenessProbe": podspec.http_probe("/health", "http-metrics", period=10, timeout=PROBE_TIMEOUT_SECONDS,
                                                failures=3),
            "readinessProbe": podspec.http_probe("/health", "http-metrics", period=10,
                                                 timeout=PROBE_TIMEOUT_SECONDS, failures=2),
        }
        pod = podspec.hardened_pod_spec(
            containers=[redis, exporter],
            service_account=account.metadata["name"],
            uid=REDIS_UID,
            match_labels=match,
            termination_grace_seconds=TERMINATION_GRACE_SECONDS,
            volumes=[
                {"name": "config", "configMap": {"name": config_map.metadata["name"], "defaultMode": 0o444}},
                # Group-readable for fsGroup: the server reads it as the pod's uid/gid.
                {"name": "auth", "secret": {"secretName": secret.metadata["name"], "defaultMode": 0o440,
                                            "items": [{"key": AUTH_CONF_KEY, "path": AUTH_CONF_KEY}]}},
                podspec.tmp_volume(),
            ],
        )
        pod["topologySpreadConstraints"] = _spread(match)
        pod["affinity"] = {
            # The zone the layout put these nodes in (their replicas or masters are in other zones).
            "nodeAffinity": _zone_affinity(zone, args.require_zone_spread),
            # One Redis pod per node, over all zones: a replica is never on its master's node.
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": dict(match)}}]},
        }
        annotations = {
            "checksum/config": checksum,
            # The cluster bus and the exporter bypass the sidecar; NetworkPolicy guards them.
            "traffic.sidecar.istio.io/excludeInboundPorts": f"{REDIS_BUS_PORT},{REDIS_EXPORTER_PORT}",
            "traffic.sidecar.istio.io/excludeOutboundPorts": f"{REDIS_BUS_PORT}",
            # Replication on 6379 goes through the sidecar: it must be up before Redis starts.
            "proxy.istio.io/config": json.dumps({"holdApplicationUntilProxyStarts": True}),
        }
        # Pulumi waits ~10 min for a rollout by default; each pod may load a large AOF (the startup
        # probe allows 10 min) and the zone's pods restart one after another.
        protect = pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=after,
                                         custom_timeouts=pulumi.CustomTimeouts(create="60m", update="60m"))
        return k8s.apps.v1.StatefulSet(
            f"{name}-statefulset-{suffix}",
            metadata=podspec.metadata(statefulset_name(zone), ns, object_labels, annotations={
                MASTERS_ANNOTATION: str(s.masters), REPLICAS_ANNOTATION: str(s.replicas_per_master)}),
            spec={
                "serviceName": HEADLESS_SERVICE,
                # Fixed by the layout: the bootstrap paired these pod names across zones.
                "replicas": pods,
                # Nodes start together; the bootstrap Job forms the cluster, not the start order.
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate"},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "selector": {"matchLabels": zone_match},
                "template": {"metadata": {"labels": {**pod_labels, ZONE_LABEL: suffix}, "annotations": annotations},
                             "spec": pod},
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data", "labels": zone_match},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": s.storage_class,
                             "resources": {"requests": {"storage": s.storage_size}}},
                }],
            },
            opts=protect,
        )

    def _network_policies(self, name: str, args: RedisClusterArgs, ns: Any, object_labels: dict[str, str],
                          match: dict[str, str]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        redis_pods = {"podSelector": {"matchLabels": dict(match)}}
        bootstrap_pods = {"podSelector": {"matchLabels": podspec.selector_labels(BOOTSTRAP)}}
        podspec.default_deny(f"{name}-default-deny", ns, object_labels, child)
        podspec.workload_network_policy(
            f"{name}-network-policy", APP, ns, object_labels, match, istiod_namespace=args.istiod_namespace,
            ingress=[
                {"from": [podspec.namespace_peer(args.client_namespace, args.client_pod_labels)],
                 "ports": podspec.tcp_ports(REDIS_PORT)},
                {"from": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT, REDIS_BUS_PORT)},
                {"from": [bootstrap_pods], "ports": podspec.tcp_ports(REDIS_PORT)},
                {"from": [podspec.namespace_peer(args.monitoring_namespace, args.scraper_labels)],
                 "ports": podspec.tcp_ports(REDIS_EXPORTER_PORT, podspec.SIDECAR_METRICS_PORT)},
            ],
            egress=[{"to": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT, REDIS_BUS_PORT)}],
            opts=child,
        )
        podspec.workload_network_policy(
            f"{name}-bootstrap-network-policy", BOOTSTRAP, ns, podspec.labels(BOOTSTRAP, "session-store"),
            podspec.selector_labels(BOOTSTRAP), istiod_namespace=args.istiod_namespace,
            egress=[{"to": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT)}],
            opts=child,
        )

    def _bootstrap(self, name: str, args: RedisClusterArgs, ns: Any, account: Any, secret: Any,
                   statefulsets: list[k8s.apps.v1.StatefulSet]) -> None:
        s = args.settings
        labels = podspec.labels(BOOTSTRAP, "session-store", image_tag(s.image))
        script = render_bootstrap_script(bootstrap_shards(s, args.zones))
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-bootstrap-script", metadata=podspec.metadata(BOOTSTRAP, ns, labels),
            data={SCRIPTS["bootstrap"]: script}, opts=pulumi.ResourceOptions(parent=self))
        container = {
            "name": "bootstrap",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", f"/scripts/{SCRIPTS['bootstrap']}"],
            "env": [{"name": "REDISCLI_AUTH",
                     "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}}],
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}, podspec.tmp_mount()],
        }
        pod = podspec.hardened_pod_spec(
            containers=[container], service_account=account.metadata["name"], uid=REDIS_UID,
            match_labels=podspec.selector_labels(BOOTSTRAP), termination_grace_seconds=10,
            volumes=[{"name": "scripts", "configMap": {"name": scripts.metadata["name"], "defaultMode": 0o444}},
                     podspec.tmp_volume()])
        pod.pop("topologySpreadConstraints")
        pod["restartPolicy"] = "Never"
        k8s.batch.v1.Job(
            f"{name}-bootstrap",
            metadata=podspec.metadata(BOOTSTRAP, ns, labels),
            spec={
                "backoffLimit": 4,
                "activeDeadlineSeconds": 1200,
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        # A native sidecar ends with the Job's container, so the Job completes.
                        "sidecar.istio.io/nativeSidecar": "true",
                        "checksum/script": hashlib.sha256(script.encode()).hexdigest()[:16]}},
                    "spec": pod,
                },
            },
            # Every StatefulSet is ready (every node answers) before the Job runs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=statefulsets),
        )


def _tcp_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}


def _exec_probe(script: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"exec": {"command": ["sh", f"{CONF_DIR}/{script}"]}, "periodSeconds": period,
            "timeoutSeconds": PROBE_TIMEOUT_SECONDS, "failureThreshold": failures}


def _spread(match: Mapping[str, str]) -> list[dict[str, Any]]:
    """Even over nodes, counted over every zone's pods. The zone is fixed by node affinity per
    StatefulSet (the layout balances zones), so no zone constraint that could fight it."""
    return [{"maxSkew": 1, "labelSelector": {"matchLabels": dict(match)}, "nodeTaintsPolicy": "Honor",
             "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]


def _zone_affinity(zone: str, required: bool) -> dict[str, Any]:
    term = {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}
    if required:
        return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]}
