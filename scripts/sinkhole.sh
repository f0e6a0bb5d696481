#!/usr/bin/env bash
# Run a command inside a network namespace whose only way out is a counting sinkhole.
#
#   unshare --net --mount -- bash scripts/sinkhole.sh COMMAND [ARGS...]
#
# Inside: loopback up (the private Tor network and the nodes live there), and a default
# route into a veth pair whose far end has no address, so whatever tries to leave dies
# there and is counted in /proc/net/dev (per namespace). IPv6 is off on both ends before
# they go up, so the kernel sends nothing of its own. The resolver is pointed out through
# the sinkhole: a DNS lookup outside Tor is a counted packet, never an answered query.
# The tests read the counters (tests/leak.py); OBT_SINKHOLE names the interfaces.
set -euo pipefail

near=obtsink0
far=obtsink1

if [ -e /proc/self/ns/net ] && [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
    echo "sinkhole: refusing to run outside a network namespace of our own" >&2
    echo "sinkhole: use: unshare --net --mount -- bash $0 COMMAND..." >&2
    exit 2
fi

ip link set lo up
for key in all default; do
    echo 1 > "/proc/sys/net/ipv6/conf/$key/disable_ipv6"
done
ip link add "$near" type veth peer name "$far"
echo 1 > "/proc/sys/net/ipv6/conf/$near/disable_ipv6"
echo 1 > "/proc/sys/net/ipv6/conf/$far/disable_ipv6"
# 192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation only, and here it never leaves
ip addr add 192.0.2.1/24 dev "$near"
ip link set "$far" up
ip link set "$near" up
# a gateway and a resolver that answer nothing, with fixed link addresses: what is sent
# to them goes out whole (no ARP first), so the capture shows the real packet
ip neigh add 192.0.2.254 lladdr 02:00:00:00:00:fe dev "$near" nud permanent
ip neigh add 192.0.2.53 lladdr 02:00:00:00:00:35 dev "$near" nud permanent
ip route add default via 192.0.2.254 dev "$near"

# one try, one second: a leaked lookup is counted at once and does not hold a test up
resolv=$(mktemp /tmp/obt-sinkhole-resolv.XXXXXX)
printf 'nameserver 192.0.2.53\noptions timeout:1 attempts:1\n' > "$resolv"
chmod 0644 "$resolv"
mount --bind "$resolv" /etc/resolv.conf

export OBT_SINKHOLE="$near:$far"
exec "$@"
