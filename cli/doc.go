// Package cli is the bourse command line: every command of the CLI surface,
// output as aligned tables or --json. Commands write to injected writers so
// tests call them directly.
//
// Forming a network: `node id` exports a home's identity, the `genesis`
// commands assemble a genesis from those exports, and `init --genesis
// --bootstrap` joins a home to it (docs/operators.md). Reaching a daemon:
// see apiClient for where the address, token and certificate pin come
// from and what is refused.
//
// May import: node (its config, API client and the dashboard's login
// codes), wallet, codec.
package cli
