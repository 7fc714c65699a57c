// Package wire holds the one definition of every Bourse network protocol
// name: the gossip topics and the request/response protocols. p2p builds
// the wire ids from them (/bourse/<chain-id>/<topic>/2 for a topic,
// /bourse/<chain-id>/<proto> for a protocol), chain/driver publishes and
// requests on them, node wires the two. It imports nothing, so any package
// may use it whatever the layering (chain/ may not import p2p/).
package wire

// Short names of the gossip topics.
const (
	TopicOffers    = "offers"    // provider capacity offers
	TopicBids      = "bids"      // client job bids
	TopicTxs       = "txs"       // chain transactions
	TopicConsensus = "consensus" // proposals and votes
)

// Short names of the request/response protocols, with their version.
const (
	ProtoSync = "sync/1" // blocks with commits from a height (served by chain/driver)
	ProtoBlob = "blob/1" // content-addressed blobs (served by p2p.BlobServer)
	// ProtoService carries service requests from a gateway to the
	// provider of a replica (served by gateway.ProviderHandler).
	ProtoService = "svc/1"
)
