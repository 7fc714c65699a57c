// Package p2p is the network layer: a libp2p host (TCP and QUIC, Noise,
// yamux), discovery (bootstrap peers, mDNS, Kademlia DHT), validated
// GossipSub topics with peer scoring, and length-prefixed request/response
// protocols (sync, blob).
//
// May import: wallet, codec and libp2p.
package p2p
