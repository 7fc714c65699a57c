// Package gateway is the request path of services (issue 19): every node
// runs a Gateway, an HTTP ingress and load balancer, and every provider
// a ProviderHandler answering svc/1 streams with its running replicas
// (worker.Service).
//
// A request names its service by path (/svc/<name>/rest, the prefix
// removed) or by host (<name>.<Config.Domain>). The gateway asks its
// RouteTable (the node's view of the chain's leases) for the replicas,
// and picks one by the power of two choices: two random candidates, the
// one with the lower (outstanding requests + 1) × expected latency ×
// (1 + provider-reported load). Expected latency is an EWMA of the
// requests this gateway sent the replica, fading (10 s) back to the
// libp2p round-trip time when it gets no traffic, so a replica that was
// slow is tried again. A replica that fails is avoided for Config.DownFor,
// doubling with consecutive failures. A failed attempt is retried on
// another replica (Config.MaxAttempts in all) if the request cannot have
// reached a handler (the stream did not open, the provider refused it)
// or its method is idempotent; otherwise the client gets 502 and the
// request is not sent again.
//
// On the wire, a gateway keeps svc/1 streams open per provider and sends
// requests on them one at a time (see envelope.go); a provider bounds the
// streams it holds per peer and in all, the time a frame may take to
// arrive, and the bodies it accepts.
//
// The gateway counts requests, bytes, errors and latency per replica
// (Stats, with Jain's fairness index over a service's replicas) and cuts
// them into signed UsageReceipts per period (Receipts).
package gateway
