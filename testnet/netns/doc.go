// Package netns builds a network of Linux network namespaces for tests: one
// namespace per host, each with its own address on a bridge, so processes
// in them talk over real packets that the test can cut, drop and delay.
//
// # Layout
//
// New(n) creates, for a run with a unique id (bnt-<pid>-<random>):
//
//	bnt-<id>-hub   a namespace holding the bridge br0 and one veth end per
//	               host (v0, v1, ...); nothing of the run touches the host's
//	               own namespace, so the host's firewall (Docker's FORWARD
//	               policy, br_netfilter) plays no part
//	bnt-<id>-h<i>  host i: lo, and eth0 (the other end of vi) with address
//	               10.99.0.<i+1>/24
//	bnt-<id>-r<i>  for a host put behind a NAT (New's behindNAT): its router,
//	               10.99.0.<i+1> on the bridge, 192.168.<i+1>.1 towards the
//	               host (192.168.<i+1>.2, default route through the router),
//	               masquerading what goes out and forwarding nothing in
//
// Close removes them all, ending whatever still runs inside (deleting a
// namespace destroys its interfaces). Sweep removes the namespaces of runs
// whose process has died (a test killed by its timeout leaves them).
//
// # Faults
//
// Every fault is stated as the whole desired picture of a host and
// applied atomically with iptables-restore (filter table) and tc, so
// faults compose and Heal undoes all of them:
//
//	Partition(groups...)  hosts in different groups drop each other's
//	                      packets (both directions, iptables DROP)
//	Isolate(i)            host i reaches nobody
//	LinkDown/LinkUp(i)    the bridge end of host i's cable goes down
//	Loss(i, p)            host i drops a fraction p of packets in and out
//	                      (iptables statistic match)
//	Delay(i, d, jitter)   every round trip with host i grows by d: tc
//	                      netem on eth0, or, where the kernel has no
//	                      sch_netem, host i's incoming packets wait in an
//	                      NFQUEUE this process releases after d (ErrNoNetem
//	                      when the kernel has neither)
//	Slow(i, rate, lat)    tc tbf on eth0: a slow link whose queue delays
//	                      packets up to lat (works where netem does not)
//	Heal()                all of the above undone
//
// # Running and reaching processes
//
// Command(i, argv...) is an exec.Cmd that runs argv inside host i (through
// `ip netns exec`). DialContext(i) and HTTPClient(i) dial from inside
// host i's namespace (the dialing thread enters it with setns), so a test
// reaches a daemon's loopback-only API in host i without a proxy.
//
// Available says why namespaces cannot be used here (not root, no ip or
// iptables); tests skip with that message.
package netns
