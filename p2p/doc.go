// Package p2p is Bourse's network layer: a libp2p host (TCP and QUIC,
// Noise, yamux, connection and resource managers), discovery (bootstrap
// peers, mDNS, a Kademlia DHT scoped to the chain), validated GossipSub
// topics with peer scoring, and length-prefixed request/response protocols
// (sync, blob).
//
// May import: wallet, codec and libp2p.
//
// # Identity
//
// The node key is a libp2p Ed25519 key stored in <home>/node.key as
// crypto.MarshalPrivateKey bytes with mode 0600. `bourse init` calls
// LoadOrCreateIdentity; the daemon calls LoadIdentity. Keys readable by
// group or others, or of another type, are refused.
//
// # Host
//
//	cfg := p2p.DefaultConfig()          // or the [p2p] section of config.toml
//	cfg.Registerer = promRegistry       // optional; never the global registry
//	key, err := p2p.LoadIdentity(filepath.Join(home, p2p.NodeKeyFile))
//	h, err := p2p.New(ctx, cfg, chainID, key, logger)
//	defer h.Close()
//
// Config fields, their toml names and defaults are documented on Config;
// Validate returns a *ConfigError naming the bad field. LocalConfig is the
// configuration for tests and local testnets (127.0.0.1, port 0, no mDNS,
// DHT server mode, no NAT machinery).
//
// h.ID, h.Addrs (full multiaddrs with /p2p/, fit for another node's
// bootstrap list), h.Peers (id, addresses, ping latency EWMA, protocols),
// h.Latency and h.Ping describe the network; latency feeds nearest-provider
// placement.
//
// # Discovery and NAT
//
// Bootstrap peers are dialled at start and redialled with exponential
// backoff (reconnect_min doubling to reconnect_max) whenever they drop;
// they are protected from connection trimming and seed the DHT. The DHT
// speaks /bourse/<chain-id>/kad/1.0.0, so nodes of other chains (and IPFS)
// are never in its routing table; every node advertises itself under the
// rendezvous key "bourse/<chain-id>" and looks the key up, at first every
// second and backing off to discovery_interval once it holds conn_low
// peers, and dials what it finds (up to conn_high connections). mDNS finds
// nodes of the same chain on the local network.
//
// A provider behind NAT is reached in this order: (1) NAT port mapping
// (UPnP/NAT-PMP) when the gateway allows it; AutoNAT v2 then confirms that
// the mapped address is publicly dialable and the node advertises it;
// (2) otherwise the node stays a DHT client and, with static_relays
// configured, reserves a slot on a circuit relay v2 and advertises the
// /p2p-circuit address; peers first connect through the relay, and
// (3) DCUtR hole punching upgrades that relayed connection to a direct
// one. Public nodes can offer relaying with relay_service = true (with
// autonat = false the host is taken to be public, or libp2p would never
// start the relay). Request/response streams (sync, blobs, results) open
// over a relayed connection too, so a NATed provider answers before hole
// punching succeeds, within the relay's limits (libp2p's defaults: two
// minutes and 128 KiB each way per circuit), which large blobs exceed;
// those wait for the direct connection. Inbound exchanges over relayed
// connections have a budget of their own on top of the per-peer one:
// RelayedPerPeer (2) per peer and a quarter of max_inbound_requests in all
// per protocol, so peers that reach a node only through relays (which
// cost them nothing) cannot take the slots direct peers use. GossipSub does not use relayed
// connections. A host behind a port forward sets announce_addrs to its
// public addresses: they replace the listen addresses it advertises
// (relay circuit addresses are kept).
//
// # Topics
//
// Topic names are short (TopicOffers, TopicBids, TopicTxs,
// TopicConsensus); on the wire they are /bourse/<chain-id>/<name>/2.
// Message ids are the sha256 of the payload, so identical content is
// delivered once whoever publishes it. The envelope carries no author and
// no libp2p signature (StrictNoSign): every payload is signed by its
// author's chain key, which the topic's validator checks.
//
//	t, err := h.Join(p2p.TopicOffers, p2p.ValidatorFunc(validateOffer)) // decode, Verify, Validate
//	sub, err := t.Subscribe()           // sub.C delivers validated Messages
//	err = t.Publish(ctx, data)          // runs the validator locally too
//
// A Validator decodes with limits and checks signature, chain id, size and
// expiry, returning Accept (with the decoded value, handed to subscribers
// as Message.Decoded so nobody decodes twice), Reject (invalid: the
// forwarding peer's score drops) or Ignore (stale or duplicate: dropped
// without penalty). With Reject/Ignore it may return a Reason that labels
// the bourse_p2p_validation_total metric. Validators run concurrently,
// bounded per topic by validation_queue, behind a pipeline queue of the
// same size; what does not fit is dropped and counted in
// bourse_p2p_gossip_dropped_total. A subscriber more than 256 messages
// behind loses messages (bourse_p2p_gossip_undeliverable_total); joining
// alone makes the host relay the topic.
//
// Flood publishing is on: messages this host originates, consensus votes
// and proposals above all, go to every topic peer above the publish
// threshold rather than only to the mesh (GossipSub has no per-topic
// switch). Scoring parameters and the reasoning behind them are in
// scoring.go; PeerScores returns the latest sample.
//
// # Request/response
//
// Streams carry frames of kind (data, error, end), a uvarint length and
// the payload. Handle registers a unary handler and Request calls it;
// HandleStream and RequestStream carry responses of many frames (block
// sync). Requests and frames have size caps, every exchange (and each
// streamed frame) has a deadline (request_timeout, or the caller's
// context if sooner), and a server cuts off a whole streamed response at
// stream_timeout however promptly its frames are read. At most
// max_inbound_requests run per protocol, at most max_inbound_per_peer of
// them from one peer, so that a peer holding its share of slow streams
// cannot stop another's blob fetch or block sync; refused streams are
// reset and counted as busy. Malformed or oversized frames reset the
// stream and are counted. Handler
// errors reach the caller as *RemoteError. Protocol ids are
// /bourse/<chain-id>/<name>; ProtoSync and ProtoBlob are reserved names.
//
// # Blobs
//
// NewBlobServer serves, from a BlobSource (the worker's result store, the
// node's payload store), only hashes that were Published to it, and only
// to the peers its BlobAuthorizer admits (SetAuthorizer; the node admits
// a payload's matched provider and a result's client), judging the
// credential a client passes to FetchBlobWith; PublishPublic serves a
// hash to anyone. Every refusal reads as ErrBlobNotFound.
// FetchBlob and FetchBlobTo check the announced size against the caller's
// cap and the sha256 of what arrived before accepting it; a lying or
// truncating server yields ErrHashMismatch or ErrBlobMalformed.
//
// # Lifetimes and metrics
//
// Each component has one goroutine that owns its state: the host loop
// (joined topics), the bootstrap keeper (backoff), the discovery loop, the
// connector (dials), the pinger, one pump per subscription. Inbound
// handlers and pumps enter through a gate that Close shuts; Close cancels
// the host context, waits for all of them, then closes mDNS, the DHT and
// the libp2p host. Prometheus collectors (bourse_p2p_*) go to
// Config.Registerer or are returned by Collectors.
//
// # Benchmarks
//
// BenchmarkGossipPropagation (make bench) measures latency percentiles and
// burst throughput for 20 and 50 in-process hosts; see its comment.
package p2p
