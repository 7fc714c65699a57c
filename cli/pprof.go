package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"
)

// PprofAddrFile is written in the node home when the daemon serves
// profiles (BOURSE_PPROF=1): the loopback host:port of /debug/pprof/.
const PprofAddrFile = "pprof.addr"

// servePprof serves the runtime profiles on a free loopback port until
// ctx ends and writes the address to home/PprofAddrFile, so that
// 'go tool pprof http://$(cat HOME/pprof.addr)/debug/pprof/profile' finds
// each daemon of a testnet.
func servePprof(ctx context.Context, home string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	if err := os.WriteFile(filepath.Join(home, PprofAddrFile), []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	return nil
}
