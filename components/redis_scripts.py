"""The shell scripts every Redis pod and the bootstrap Job run, rendered as text: the container's
entry point (`render_start_script`: the node's data and identity checked, peers' addresses
refreshed, then `exec redis-server`), the probes, and the bootstrap that forms the cluster and
converges it to the layout. They are POSIX sh with the tools the official `redis` image has
(`redis-cli`, `redis-check-aof`, `getent`, `awk`, `sed`, `timeout`); the tests run them against real
`redis-server` processes (tests/test_redis_cluster_servers.py, test_redis_cluster_restart.py,
test_redis_faults.py)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from policies.aiwfe_policies.contract import REDIS_PORT

DATA_DIR = "/data"
AOF_DIR_NAME = "appendonlydir"
AOF_MANIFEST = "appendonly.aof.manifest"


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
# Rendered by components/redis_scripts.py: forms the Redis Cluster and makes each shard's members
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
# Rendered by components/redis_scripts.py. REDIS_DATA_DIR defaults to {DATA_DIR}, REDIS_PORT to {REDIS_PORT}.
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
  replica=$(printf '%s\\n' "$view" | sed 1d | awk -v id="$1" \\
    '$4 == id && $3 ~ /slave/ && $3 !~ /fail|noaddr|handshake/ {{ split($2, a, "@"); print a[1]; exit }}')
  [ -n "$replica" ] || return 1
  syncing=$(cli "$replica" info replication | sed -n 's/^master_sync_in_progress://p')
  loading=$(cli "$replica" info persistence | sed -n 's/^loading://p')
  keys=$(cli "$replica" dbsize)
  complete=yes
  [ "$syncing" = 0 ] && [ "$loading" = 0 ] || complete=no
  case "${{keys:-x}}" in 0|*[!0-9]*) complete=no ;; esac
  if [ "$complete" = no ]; then
    say "its replica $replica has no complete copy (syncing ${{syncing:-?}}, loading ${{loading:-?}}, \\
keys ${{keys:-?}})"
    return 1
  fi
  say "no failover after ${{waited}}s: asking its replica $replica ($keys keys) to take over"
  [ "$(cli "$replica" cluster failover takeover)" = OK ]
}}
# Returns as taken_over does; 1 after REDIS_TAKEOVER_WAIT_SECONDS.
wait_takeover() {{
  say "$1 served slot $2 and its data is gone: not starting until another node serves it (up to ${{takeover_seconds}}s)"
  waited=0
  # Three node timeouts: an ordinary failover has happened by then. Asked again at that pace.
  next_force=$force_after
  while :; do
    outcome=0
    taken_over "$1" "$2" || outcome=$?
    [ "$outcome" = 1 ] || break
    [ "$waited" -lt "$takeover_seconds" ] || return 1
    if [ "$waited" -ge "$next_force" ]; then
      force_takeover "$1" || true
      next_force=$((waited + force_after))
    fi
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
    # The server this script exec'd, not a later one at the same address (after a restart).
    [ "$(cli "$me" info server | sed -n 's/^process_id://p')" = "$$" ] || return 0
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
  rm -f "$data/.rejoining"
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
# Until the join is done the node is alone: the readiness probe must not take it for a fresh one.
rm -f "$data/.rejoining"
if [ -n "$rejoin_id" ]; then
  : > "$data/.rejoining"
  join "$rejoin_id" "$rejoin_slot" &
fi
exec redis-server "$@"
"""


def render_readiness_script() -> str:
    """Ready when the node answers and either is still fresh (before the bootstrap forms the
    cluster; not while start.sh rejoins it after a lost volume) or sees the cluster ok and, as a
    replica, has its link to the master up. A rolling update waits on this, so it never restarts the
    next node while the cluster is recovering."""
    return """\
#!/bin/sh
# Rendered by components/redis_scripts.py. Needs REDISCLI_AUTH; REDIS_PORT defaults to 6379.
set -eu
port=${REDIS_PORT:-6379}
cli() { redis-cli --no-auth-warning -e -p "$port" "$@" | tr -d '\\r'; }
[ "$(cli ping)" = PONG ] || exit 1
info=$(cli cluster info)
known=$(echo "$info" | sed -n 's/^cluster_known_nodes://p')
# Alone: a fresh node (ready, so the bootstrap can form the cluster), unless start.sh is still
# joining it to its shard after a lost volume (not ready until it has synced as a replica).
if [ "$known" = 1 ]; then [ ! -e "${REDIS_DATA_DIR:-/data}/.rejoining" ]; exit; fi
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
# Rendered by components/redis_scripts.py. Needs REDISCLI_AUTH; REDIS_PORT defaults to 6379.
reply=$(redis-cli --no-auth-warning -p "${REDIS_PORT:-6379}" ping 2>&1 | tr -d '\\r')
case "$reply" in
  PONG|LOADING*) exit 0 ;;
  *) echo "$reply"; exit 1 ;;
esac
"""
