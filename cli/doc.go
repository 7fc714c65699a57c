// Package cli is the bourse command line: every command of the CLI surface,
// output as aligned tables or --json. Commands write to injected writers so
// tests call them directly.
//
// May import: node (its config, API client and the dashboard's login
// codes), wallet, codec.
package cli
