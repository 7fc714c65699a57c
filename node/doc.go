// Package node wires Bourse together into the daemon that `bourse daemon`
// runs: configuration, the libp2p host, the chain driver, the market, the
// worker runtime, the HTTP API, metrics and the event stream.
//
// # Roles
//
// A node is a client always, a validator when it holds bonded stake in the
// current validator set, and a provider when config.toml's [provider]
// section has enabled = true (and its collateral is registered on chain with
// `bourse provider register`).
//
// # The home directory
//
//	config.toml   configuration (DefaultConfig, every field documented; Validate names a bad field)
//	genesis.json  the chain's genesis
//	node.key      libp2p identity (not a wallet key)
//	api.token     bearer token of the HTTP API, mode 0600
//	api.crt       self-signed TLS certificate of the API (api.key, mode 0600, its key);
//	              served when api.tls is on, pinned by clients by its SHA-256
//	keys/         encrypted wallet keystore; config.wallet.key names the signing key
//	data/         the chain store (Pebble): blocks, certificates, state, signer state
//	jobs/         the client's jobs, one JSON file each
//	payloads/     content-addressed payloads of the client's jobs and the results it fetched
//	foreign-payloads/ payloads a provider fetched from clients (their own 4 GiB quota: they
//	              can never evict this node's payloads and results)
//	results/      content-addressed job results this provider produced
//	cache/wasm/   compiled WebAssembly modules
//	verify/       scratch space of `bourse job verify` (emptied after each run)
//	daemon.pid    while running; daemon.log, a copy of the log
//
// # Start-up and shutdown
//
// New reads the configuration and genesis, unlocks the wallet key, opens the
// store, starts the libp2p host, builds the chain driver (which initialises
// the store from the genesis on first use and otherwise recovers from it),
// joins the gossip topics, opens the market service and binds the API.
// Start writes daemon.pid and runs the loops. Close (on SIGINT or SIGTERM
// through Run) stops taking work, cancels running jobs (a provider resumes
// its open matches after a restart), stops the driver, waits for every
// goroutine, closes the host and the store, and removes daemon.pid.
//
// # A job's life through the node
//
// The client's SubmitJob stores the payload (served over /blob/1 only to
// the provider the job is matched to; see blobauth.go), signs a bid and
// gossips it; open bids are re-gossiped until matched. A
// proposer's market service runs the deterministic matcher over its order
// book and puts Match transactions into its block after the mempool's, with
// the nonces that follow its own. Every node follows committed blocks
// through a lossless subscription, which only decodes the block and hands
// the events of this node's jobs to the job lifecycle (package
// node/lifecycle, a pure state machine; lifecycle.go here executes its
// actions in goroutines of the market service, on internal/clock's Clock,
// so its tests run in virtual time). The provider named in a Match
// fetches the payload and the job's manifest (its args and env, named by
// hash in the bid; both hash-checked, the payload streamed into a store of
// other clients' payloads apart from this node's own, where each client
// has a quota, and kept in memory for the run), runs it on the worker runtime and
// submits a Result; a run still going past the chain's deadline is
// stopped. The client sees the settlement and fetches the result from the
// provider, which serves it only to the client, on a request signed with
// the client's wallet key; it is streamed to disk and hashed as it
// arrives, refused past the disk the bid bought plus the logs and tar
// framing (resultCap), and kept only if it matches the hash on chain:
// paid once checked (and then acknowledged on chain, which releases the
// provider's held payment at once unless hold_ack is set); one that could
// not be fetched is challenged on chain ("challenged"): a committee of
// validators, which this node joins when drawn, fetches it by hash, or
// the provider is slashed and the client refunded ("result_unavailable").
// A client that re-ran a WASM job and got another hash challenges it with
// 'bourse job verify ID --challenge'; referees re-execute it. A job with
// visibility public has its payload, manifest and result served to any
// peer; with public_blobs = true in config.toml every published payload
// and result is. A bid past its deadline expires with every offer's
// reason. A provider that sends no result by the deadline is slashed by the
// chain. The payload must arrive within half the result grace period after
// the match (retries included, whatever pace the client serves it at);
// otherwise the provider sends chain.PayloadUnavailable, is not slashed, and
// the client's job ends payload_unavailable, refunded less a burned fee.
// A provider keeps a record of each job it runs until the chain settles
// it, then only totals. Job records are written by a persister
// goroutine; a failed write is logged at error level, counted
// (bourse_job_persist_errors_total) and said on the job. The event stream
// never blocks the node and never loses a job's latest state: a subscriber
// that falls behind gets each job's newest state in place of the ones it
// missed.
//
// VerifyJob lets the client check a provider's work without trusting it:
// it runs a settled WASM job again on the client's node, from the bid and
// the stored payload (workerJob builds the same worker job a provider
// runs), and compares the result hash with the one on chain.
//
// The node's own transactions (results, registrations, transfers) are signed
// with the sender's next nonce; one that leaves the mempool without
// committing is signed again with a fresh nonce (txSender).
//
// May import: every other Bourse package.
package node
