package p2p

import (
	"math"
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring, written down.
//
// GossipSub scores every peer from its behaviour; a peer whose score drops
// below a threshold loses privileges. Bourse's parameters:
//
// Thresholds
//   - gossip     -500: below it we neither send the peer gossip (IHAVE)
//     nor act on its gossip.
//   - publish   -1000: below it our own messages are not sent to the peer.
//   - graylist  -2500: below it every RPC from the peer is ignored.
//   - accept PX    10: only peers with a positive track record may hand us
//     other peers when pruning.
//   - opportunistic graft 3.5: the mesh median below this triggers grafting
//     of better peers.
//
// Per topic (weights scale each topic's contribution)
//   - consensus weight 1.0, txs 0.5, offers and bids 0.3: losing consensus
//     messages costs most, so misbehaving there costs most.
//   - P1 time in mesh: +1 per minute in the mesh, capped at +10 (weight
//     1/60 per second). Rewards stable neighbours.
//   - P2 first deliveries: +1 per message the peer delivered first, decaying
//     by 10%/minute, capped at +20. Rewards useful peers.
//   - P3 mesh delivery deficit: off. Bourse traffic is bursty (offers come
//     in waves, consensus pauses between heights), so an expected-rate
//     penalty would punish honest but quiet peers.
//   - P4 invalid messages: -100 × (invalid deliveries)², decaying to 1%
//     over an hour. One rejected message costs -100·weight, so a handful of
//     invalid consensus messages push a peer under the gossip threshold and
//     ~5 under graylist. Ignore results never count here.
//
// Market traffic (offers and bids), application-specific score P5
//   - rate limit: each peer may deliver Config.MarketRate offers and as
//     many bids per second (default 200), in bursts of ten seconds' worth.
//     Beyond it a message is dropped unvalidated (Ignore, so not forwarded)
//     and costs its sender one penalty point.
//   - Refuse: a well-formed, signed message the node's chain state does not
//     admit (an unfunded bid, an offer from an unregistered or
//     undercollateralised provider) is dropped and costs one point. It is
//     not a Reject (P4): two honest nodes a block apart may disagree about
//     a balance, and P4 decays over an hour.
//   - points halve every PenaltyHalfLife (one minute); the score is
//     -AppPenaltyWeight × points², weight 1: about 22 points put a peer
//     under the gossip threshold, 50 under graylist, so a peer repeating
//     refused or over-limit traffic is graylisted within some fifty
//     messages, while an honest relay that forwarded a handful of bids a
//     block too late loses a few points that are gone within minutes.
//
// Peer-wide
//   - topic score cap 50: good behaviour cannot bank unlimited credit to
//     spend on misbehaviour.
//   - P6 IP colocation: more than 8 peers from one IP cost -10 × surplus²
//     (Sybil resistance). Loopback is exempt, so local testnets and tests
//     work.
//   - P7 behaviour penalty: protocol abuse (broken promises in IWANT,
//     GRAFT during backoff) beyond 6 costs -10 × surplus², decaying by
//     to 1% over ten minutes.
//   - decay every second; counters under 0.01 drop to zero; a disconnected
//     peer's score is kept 10 minutes so reconnecting does not wash it.

// Application penalty parameters (see the comment above).
const (
	AppPenaltyWeight = 1.0
	PenaltyHalfLife  = time.Minute
)

// Score thresholds (see the comment above).
const (
	GossipThreshold             = -500
	PublishThreshold            = -1000
	GraylistThreshold           = -2500
	AcceptPXThreshold           = 10
	OpportunisticGraftThreshold = 3.5
)

func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           AcceptPXThreshold,
		OpportunisticGraftThreshold: OpportunisticGraftThreshold,
	}
}

var loopbackNets = func() []*net.IPNet {
	_, v4, _ := net.ParseCIDR("127.0.0.0/8")
	_, v6, _ := net.ParseCIDR("::1/128")
	return []*net.IPNet{v4, v6}
}()

func peerScoreParams(app func(peer.ID) float64) *pubsub.PeerScoreParams {
	const decayInterval = time.Second
	return &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{},
		SeenMsgTTL:                  seenTTL,
		TopicScoreCap:               50,
		AppSpecificScore:            app,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 8,
		IPColocationFactorWhitelist: loopbackNets,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecayWithBase(10*time.Minute, decayInterval, 0.01),
		DecayInterval:               decayInterval,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
	}
}

// topicWeight is the weight of a topic's score; unknown topics get the
// lowest.
func topicWeight(name string) float64 {
	switch name {
	case TopicConsensus:
		return 1.0
	case TopicTxs:
		return 0.5
	default:
		return 0.3
	}
}

func topicScoreParams(name string) *pubsub.TopicScoreParams {
	const decayInterval = time.Second
	return &pubsub.TopicScoreParams{
		TopicWeight:                    topicWeight(name),
		TimeInMeshWeight:               1.0 / 60,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  600,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    math.Pow(0.9, 1.0/60), // -10% per minute
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecayWithBase(time.Hour, decayInterval, 0.01),
	}
}
