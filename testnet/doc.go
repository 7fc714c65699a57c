// Package testnet generates and runs local multi-node networks: node homes,
// a shared genesis, distinct ports, and the launcher behind
// `bourse testnet up|gen|start|status|down|demo`. testnet/README.md is the
// user's guide; this is the programmer's.
//
// # Generating
//
// Generate(Options{Dir, N, APIBasePort, ...}) writes, under Dir:
//
//	network.json   the manifest (Network): chain id, and per node its name,
//	               home, peer id, API address, P2P multiaddrs, wallet address
//	genesis.json   one genesis: every node a validator (Stake) and a funded
//	               account (Balance); chain.DefaultTimeouts and DefaultParams
//	node0..        normal homes made by node.InitHome (config.toml, node.key,
//	               api.token, keys/), plus genesis.json and the keystore
//	               passphrase in "passphrase" (0600; throwaway keys, light scrypt)
//
// Node i's API is 127.0.0.1:APIBasePort+i, its P2P TCP and QUIC port is
// P2PBasePort+i (checked free before anything is written); each node
// bootstraps from all the others, mDNS off, provider enabled. With
// Containers the homes are for testnet/compose.yaml instead: same ports in
// every container, P2P on 0.0.0.0, peers by host name. Dir must be empty
// unless Force, which replaces a stopped testnet and nothing else.
// Load(dir) reads the manifest back; ParseManifest checks it (homes cannot
// point outside dir).
//
// # Running
//
// Start(nw, StartOptions) runs `bourse daemon --home H --passphrase-file
// H/passphrase` per node in its own session, output appended to
// H/daemon.out, and returns a Cluster that owns the processes:
// Cluster.Stop(ctx, grace) sends SIGTERM, then SIGKILL after grace, and
// waits for them; Cluster.Detach leaves them running (the CLI's --detach);
// Cluster.ExitError reports a daemon that died. WaitReady polls every
// node's /v1/status until all answer at MinHeight, and on failure returns a
// *NodeError carrying the tail of the node's log. RegisterProviders posts
// each node's provider registration with the network's collateral through
// its API and waits until the chain has them (the genesis has no provider
// field). Status asks every node for height and peers; Stop (no Cluster
// needed) stops daemons found through their daemon.pid, checking through
// /proc that the pid is still that home's daemon, and clears stale pid
// files left by a killed daemon.
//
// The end-to-end tests of the whole binary are in package e2e. Package
// testnet/netns runs nodes in network namespaces of their own, for
// partitions of real packets (and testnet/netns.sh does it by hand).
//
// May import: node, chain, wallet (and p2p, node/api through node).
package testnet
