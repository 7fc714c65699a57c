package p2p

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/bourse-net/bourse/internal/wire"
)

// Short names of the Bourse gossip topics (defined once, in internal/wire).
// The wire topic is /bourse/<chain-id>/<name>/2 (see TopicID).
const (
	TopicOffers    = wire.TopicOffers    // provider capacity offers
	TopicBids      = wire.TopicBids      // client job bids
	TopicTxs       = wire.TopicTxs       // chain transactions
	TopicConsensus = wire.TopicConsensus // proposals and votes
)

// topicVersion ends every wire topic. Version 2 carries messages without
// an author or libp2p signature (version 1 signed each message with the
// publisher's peer key): every payload is signed by its author's chain key
// and checked by the topic's validator, so the envelope signature was a
// second check of nothing, 7% of a node's CPU under a transfer load. The
// two versions do not mix, so they live on different topics.
const topicVersion = "/2"

// TopicID returns the wire name of topic name on chainID.
func TopicID(chainID, name string) string { return "/bourse/" + chainID + "/" + name + topicVersion }

// Result is a validator's verdict on one gossip message.
type Result int

const (
	// Accept: the message is valid; deliver it and forward it.
	Accept Result = iota
	// Reject: the message is invalid (bad encoding, signature, chain id,
	// size); drop it and penalise the peer that sent it.
	Reject
	// Ignore: the message is well formed but not useful (stale, expired,
	// duplicate, from the future); drop it without penalty.
	Ignore
	// Refuse: the message is well formed and signed but this node's chain
	// state does not admit it (an unfunded bid, an unregistered
	// provider's offer). Drop it without forwarding; the sending peer
	// earns one application penalty point (see scoring.go).
	Refuse
)

func (r Result) String() string {
	switch r {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// Reason labels a Reject or Ignore in metrics. Use a small fixed
// vocabulary ("bad signature", "wrong chain id", "expired"), never text
// that embeds values.
type Reason string

// Validator checks messages of one topic. Implementations live in the
// packages that own the message types (market, chain).
//
// Validate is called concurrently from several goroutines, for messages
// from peers and for this host's own publications (from is then the host's
// id), and must honour ctx (it is cancelled after
// Config.ValidationTimeout). It decodes data with size limits, checks
// signature, chain id, size and expiry, and returns the decoded value with
// Accept. With Reject or Ignore, decoded may be a Reason or an error whose
// text becomes the metric's reason label. A panic is recovered and counts
// as Reject.
type Validator interface {
	Validate(ctx context.Context, from peer.ID, data []byte) (decoded any, r Result)
}

// ValidatorFunc adapts a function to Validator.
type ValidatorFunc func(ctx context.Context, from peer.ID, data []byte) (any, Result)

// Validate calls f.
func (f ValidatorFunc) Validate(ctx context.Context, from peer.ID, data []byte) (any, Result) {
	return f(ctx, from, data)
}

// Message is a validated gossip message.
type Message struct {
	Topic        string  // short topic name
	ReceivedFrom peer.ID // the neighbour that forwarded it
	Local        bool    // published by this host
	Data         []byte  // raw bytes, owned by the receiver
	Decoded      any     // what the topic's Validator returned with Accept
}

// Topic is a joined GossipSub topic. Joining makes the host relay the topic
// (take part in its mesh) even without local subscribers.
type Topic struct {
	name  string
	id    string
	hs    *Host
	t     *pubsub.Topic
	relay pubsub.RelayCancelFunc
}

// validTopicName keeps topic names short and label safe.
func validTopicName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("topic name %q: must be 1 to 32 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("topic name %q: only a-z, 0-9 and '-' are allowed", name)
		}
	}
	return nil
}

// Join joins topic name (one of the Topic* constants, or another short
// lowercase name) with validator v, which sees every message before it is
// delivered or forwarded. Joining a name twice is an error.
func (hs *Host) Join(name string, v Validator) (*Topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if v == nil {
		return nil, fmt.Errorf("join %s: nil validator", name)
	}
	var (
		topic *Topic
		jerr  error
	)
	err := hs.do(context.Background(), func(st *hostState) {
		if _, ok := st.topics[name]; ok {
			jerr = fmt.Errorf("join %s: already joined", name)
			return
		}
		topic, jerr = hs.join(name, v)
		if jerr == nil {
			st.topics[name] = topic
		}
	})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	return topic, jerr
}

// join runs on the host loop.
func (hs *Host) join(name string, v Validator) (*Topic, error) {
	id := TopicID(hs.chainID, name)
	label := topicLabel(name)
	val := func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		decoded, r := hs.validate(ctx, v, label, from, msg.Data)
		if r == Accept {
			msg.ValidatorData = decoded
			return pubsub.ValidationAccept
		}
		if r == Ignore || r == Refuse {
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationReject
	}
	// At most ValidationQueue messages of this topic are validated at once;
	// with the pipeline queue of the same size in front, a flood is dropped
	// (and counted as throttled or queue full) instead of piling up.
	if err := hs.ps.RegisterTopicValidator(id, val,
		pubsub.WithValidatorTimeout(time.Duration(hs.cfg.ValidationTimeout)),
		pubsub.WithValidatorConcurrency(hs.cfg.ValidationQueue)); err != nil {
		return nil, fmt.Errorf("join %s: register validator: %w", name, err)
	}
	t, err := hs.ps.Join(id)
	if err != nil {
		hs.ps.UnregisterTopicValidator(id)
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	if err := t.SetScoreParams(topicScoreParams(name)); err != nil {
		t.Close()
		hs.ps.UnregisterTopicValidator(id)
		return nil, fmt.Errorf("join %s: score params: %w", name, err)
	}
	relay, err := t.Relay()
	if err != nil {
		t.Close()
		hs.ps.UnregisterTopicValidator(id)
		return nil, fmt.Errorf("join %s: relay: %w", name, err)
	}
	return &Topic{name: name, id: id, hs: hs, t: t, relay: relay}, nil
}

// validate runs v with size check, panic recovery and metrics.
func (hs *Host) validate(ctx context.Context, v Validator, label string, from peer.ID, data []byte) (decoded any, r Result) {
	reason := ""
	defer func() {
		if p := recover(); p != nil {
			hs.log.Error("gossip validator panicked", "topic", label, "from", from.ShortString(), "panic", p)
			decoded, r, reason = nil, Reject, "validator panic"
		}
		if r != Accept && reason == "" {
			switch d := decoded.(type) {
			case Reason:
				reason = string(d)
			case error:
				reason = d.Error()
			}
			decoded = nil
		}
		if r != Accept && r != Reject && r != Ignore && r != Refuse {
			r, reason = Reject, "bad validator result"
		}
		if r == Refuse && from != hs.ID() {
			hs.pen.add(from, 1, time.Now())
		}
		hs.m.validation.WithLabelValues(label, r.String(), hs.m.reasonLabel(label, reason)).Inc()
	}()
	if len(data) > hs.cfg.MaxMessageSize {
		reason = "oversized"
		return nil, Reject
	}
	if (label == TopicOffers || label == TopicBids) && from != hs.ID() {
		if now := time.Now(); !hs.limit.allow(from, label, now) {
			hs.pen.add(from, 1, now)
			reason = "rate limited"
			return nil, Ignore
		}
	}
	return v.Validate(ctx, from, data)
}

// topicLabel bounds the metric label space to the known topics.
func topicLabel(name string) string {
	switch name {
	case TopicOffers, TopicBids, TopicTxs, TopicConsensus:
		return name
	}
	return "other"
}

// Name returns the topic's short name.
func (t *Topic) Name() string { return t.name }

// ID returns the topic's wire name.
func (t *Topic) ID() string { return t.id }

// Peers lists the peers known to be in this topic.
func (t *Topic) Peers() []peer.ID { return t.t.ListPeers() }

// Publish validates data with the topic's validator and sends it. A
// Reject or Ignore of our own message is returned as an error.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if len(data) > t.hs.cfg.MaxMessageSize {
		t.hs.m.published.WithLabelValues(topicLabel(t.name), "oversized").Inc()
		return fmt.Errorf("publish %s: %d bytes exceeds max_message_size %d", t.name, len(data), t.hs.cfg.MaxMessageSize)
	}
	if err := t.t.Publish(ctx, data); err != nil {
		t.hs.m.published.WithLabelValues(topicLabel(t.name), "error").Inc()
		return fmt.Errorf("publish %s: %w", t.name, err)
	}
	t.hs.m.published.WithLabelValues(topicLabel(t.name), "ok").Inc()
	return nil
}

// subscriptionBuffer is how many validated messages wait for a slow
// consumer; more are dropped and counted (gossip_undeliverable_total).
const subscriptionBuffer = 256

// Subscription delivers a topic's validated messages.
type Subscription struct {
	C      <-chan Message // closed after Cancel or Host.Close
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// Subscribe starts delivering validated messages, including this host's
// own publications (Message.Local), on the returned subscription's channel.
// A consumer that falls more than 256 messages behind loses messages (they
// are counted). The channel closes on Cancel or Close.
func (t *Topic) Subscribe() (*Subscription, error) {
	ps, err := t.t.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", t.name, err)
	}
	if !t.hs.enter() {
		ps.Cancel()
		return nil, fmt.Errorf("subscribe %s: %w", t.name, ErrClosed)
	}
	ctx, cancel := context.WithCancel(t.hs.ctx)
	out := make(chan Message)
	s := &Subscription{C: out, sub: ps, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer t.hs.leave()
		defer close(s.done)
		defer close(out)
		defer ps.Cancel()
		for {
			m, err := ps.Next(ctx)
			if err != nil {
				return
			}
			msg := Message{Topic: t.name, ReceivedFrom: m.ReceivedFrom, Local: m.ReceivedFrom == t.hs.ID(), Data: m.Data, Decoded: m.ValidatorData}
			select {
			case out <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s, nil
}

// Cancel stops the subscription and waits for its goroutine; the channel
// is closed when it returns. Safe to call more than once.
func (s *Subscription) Cancel() {
	s.cancel()
	<-s.done
}

// contentID makes message ids the sha256 of the payload, so the same
// content is deduplicated whoever publishes it.
func contentID(m *pb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return string(sum[:])
}

// seenTTL is how long GossipSub remembers a message id, to drop copies
// and to score the peers that delivered it (default 2 minutes). The
// router serves a message to IWANT requests for 5 heartbeats (5 s) and
// gossips its id for 3, so an honest copy arrives well within 15 s. A later
// copy is validated again, and every topic's validator ignores (never
// rejects) what it already has or what is stale (votes of past heights,
// known or committed transactions, closed bids, superseded offers). Both
// caches are swept once a minute, so an id stays for up to 75 s: with
// the default it was up to 3 minutes, and the memory of a burst (about
// 250 bytes per message, hundreds of messages a second under load) came
// back minutes later.
const seenTTL = 15 * time.Second

func (hs *Host) pubsubOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithSeenMessagesTTL(seenTTL),
		pubsub.WithMessageIdFn(contentID),
		// No author, sequence number or signature in the envelope (see
		// topicVersion); ids are the content's hash. A message that
		// carries them anyway is refused by the router.
		pubsub.WithNoAuthor(),
		pubsub.WithPeerScore(peerScoreParams(hs.pen.score), scoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(hs.inspectScores), time.Duration(hs.cfg.ScoreInspectInterval)),
		// Flood publishing is a router-wide switch in GossipSub: every message
		// this host originates (consensus proposals and votes above all) goes
		// to all topic peers above the publish threshold, not only the mesh.
		pubsub.WithFloodPublish(true),
		pubsub.WithValidateQueueSize(hs.cfg.ValidationQueue),
		pubsub.WithMaxMessageSize(hs.cfg.MaxMessageSize + 64<<10), // room for the RPC envelope
		pubsub.WithPeerOutboundQueueSize(128),
		pubsub.WithRawTracer(tracer{hs}),
		pubsub.WithLogger(hs.log.With("component", "gossipsub")),
	}
}

func (hs *Host) inspectScores(scores map[peer.ID]float64) {
	cp := make(map[peer.ID]float64, len(scores))
	for p, s := range scores {
		cp[p] = s
		hs.m.peerScore.Observe(s)
	}
	hs.scores.Store(&cp)
}

// meshTracker mirrors GossipSub's mesh from tracer events (graft, prune,
// peer down, leave). Pubsub's event loop is its only writer; MeshPeers
// reads it.
type meshTracker struct {
	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{}
}

func (m *meshTracker) graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh == nil {
		m.mesh = make(map[string]map[peer.ID]struct{})
	}
	if m.mesh[topic] == nil {
		m.mesh[topic] = make(map[peer.ID]struct{})
	}
	m.mesh[topic][p] = struct{}{}
}

func (m *meshTracker) prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
}

func (m *meshTracker) down(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, peers := range m.mesh {
		delete(peers, p)
	}
}

func (m *meshTracker) leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
}

func (m *meshTracker) peers(topic string) []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.mesh[topic]))
	for p := range m.mesh[topic] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// MeshPeers lists the topic peers in this host's GossipSub mesh: the ones
// it forwards every message to (a subset of Peers).
func (t *Topic) MeshPeers() []peer.ID { return t.hs.mesh.peers(t.id) }

// shortTopic maps a wire topic to its metric label.
func (hs *Host) shortTopic(id string) string {
	prefix := "/bourse/" + hs.chainID + "/"
	if !strings.HasPrefix(id, prefix) || !strings.HasSuffix(id, topicVersion) {
		return "other"
	}
	return topicLabel(strings.TrimSuffix(strings.TrimPrefix(id, prefix), topicVersion))
}

// tracer counts what happens to gossip outside our validators. Tracers run
// synchronously inside pubsub and must not block.
type tracer struct{ hs *Host }

var _ pubsub.RawTracer = tracer{}

func (tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (tracer) Join(string)                              {}
func (t tracer) Leave(topic string)                     { t.hs.mesh.leave(topic) }
func (t tracer) Graft(p peer.ID, topic string)          { t.hs.mesh.graft(p, topic) }
func (t tracer) Prune(p peer.ID, topic string)          { t.hs.mesh.prune(p, topic) }
func (t tracer) OnClosedOutboundStream(p peer.ID)       { t.hs.mesh.down(p) }
func (tracer) ValidateMessage(*pubsub.Message)          {}
func (tracer) DuplicateMessage(*pubsub.Message)         {}
func (tracer) ThrottlePeer(peer.ID)                     {}
func (tracer) RecvRPC(*pubsub.RPC)                      {}
func (tracer) SendRPC(*pubsub.RPC, peer.ID)             {}
func (tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {
}
func (t tracer) DropRPC(*pubsub.RPC, peer.ID) {
	t.hs.m.dropped.WithLabelValues("rpc", "outbound queue full").Inc()
}

func (t tracer) DeliverMessage(m *pubsub.Message) {
	t.hs.m.delivered.WithLabelValues(t.hs.shortTopic(m.GetTopic())).Inc()
}

func (t tracer) RejectMessage(m *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		return // counted by the validator wrapper with its reason
	}
	t.hs.m.dropped.WithLabelValues(t.hs.shortTopic(m.GetTopic()), reason).Inc()
}

func (t tracer) UndeliverableMessage(m *pubsub.Message) {
	t.hs.m.undeliverable.WithLabelValues(t.hs.shortTopic(m.GetTopic())).Inc()
}
