// Package node wires Bourse together: configuration (config.toml), the
// daemon's lifecycle, the HTTP API on 127.0.0.1, metrics and the event
// stream. A node is a client always, a validator when it holds bonded stake,
// and a provider when its config sells capacity.
//
// May import: every other Bourse package.
package node
