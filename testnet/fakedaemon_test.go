package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
)

// The test binary doubles as a fake `bourse daemon`: with
// BOURSE_TESTNET_FAKE=1 it checks the home the way the real daemon needs it
// (config, genesis listing its key as a validator, keystore unlocked by the
// passphrase file), writes daemon.pid and serves /v1/status and
// /v1/provider on the configured API address with the home's token. The
// chain "grows" one block per 20ms. Behaviour switches:
//
//	BOURSE_TESTNET_FAKE_MODE=fail       print "fatal: boom" and exit 1
//	BOURSE_TESTNET_FAKE_MODE=ignoreterm ignore SIGTERM (only SIGKILL ends it)
const fakeEnv = "BOURSE_TESTNET_FAKE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		if err := fakeDaemon(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fatal:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeDaemon(args []string) error {
	var home, passFile string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--home":
			home = args[i+1]
		case "--passphrase-file":
			passFile = args[i+1]
		}
	}
	if len(args) == 0 || args[0] != "daemon" || home == "" || passFile == "" {
		return fmt.Errorf("want: daemon --home H --passphrase-file F, got %q", args)
	}
	mode := os.Getenv(fakeEnv + "_MODE")
	if mode == "fail" {
		fmt.Println("starting")
		return fmt.Errorf("boom")
	}
	if mode == "ignoreterm" {
		signal.Ignore(syscall.SIGTERM)
	}
	cfg, err := node.LoadConfig(filepath.Join(home, node.ConfigFile))
	if err != nil {
		return err
	}
	g, err := chain.LoadGenesis(filepath.Join(home, cfg.Chain.Genesis))
	if err != nil {
		return err
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		return err
	}
	key, err := node.Keystore(home).Unlock(cfg.Wallet.Key, strings.TrimSpace(string(pass)))
	if err != nil {
		return err
	}
	isVal := false
	for _, v := range g.Validators {
		isVal = isVal || v.Address == key.Address()
	}
	if !isVal {
		return fmt.Errorf("%s is not a genesis validator", key.Address())
	}
	tok, err := node.ReadAPIToken(home)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return err
	}
	pidPath := filepath.Join(home, node.PIDFile)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidPath)
	start := time.Now()
	var mu sync.Mutex
	registered := false
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+tok {
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: api.CodeUnauthorized, Message: "bad token"}})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /v1/status", auth(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(api.Status{ChainID: cfg.ChainID, Moniker: cfg.Moniker,
			Height: 1 + uint64(time.Since(start)/(20*time.Millisecond)), Peers: len(cfg.P2P.Bootstrap),
			Address: key.Address().String(), Roles: []string{api.RoleValidator, api.RoleProvider, api.RoleClient}})
	}))
	mux.HandleFunc("GET /v1/provider", auth(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(api.ProviderStatus{Address: key.Address().String(), Registered: registered})
	}))
	mux.HandleFunc("POST /v1/provider/register", auth(func(w http.ResponseWriter, r *http.Request) {
		var req api.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Collateral < g.Params.MinProviderCollateral {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: api.CodeBadRequest, Message: "collateral"}})
			return
		}
		go func() { // "committed" a few blocks later
			time.Sleep(60 * time.Millisecond)
			mu.Lock()
			registered = true
			mu.Unlock()
		}()
		json.NewEncoder(w).Encode(api.TxResult{Hash: "ab", Status: "pending"})
	}))
	srv := &http.Server{Handler: mux}
	// Notify would take SIGTERM back from signal.Ignore: ignoreterm
	// listens for an interrupt only.
	stopOn := []os.Signal{syscall.SIGTERM, os.Interrupt}
	if mode == "ignoreterm" {
		stopOn = stopOn[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopOn...)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Println("fake daemon up on", cfg.API.Listen)
	select {
	case <-ctx.Done():
		srv.Close()
		<-errc
		fmt.Println("fake daemon stopping")
		return nil
	case err := <-errc:
		return err
	}
}
