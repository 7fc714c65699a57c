package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
)

// NodeError is a node that failed, with the end of its log.
type NodeError struct {
	Node    string
	Err     error
	LogTail string
}

func (e *NodeError) Error() string {
	msg := e.Node + ": " + e.Err.Error()
	if e.LogTail != "" {
		msg += "\n--- last lines of its log ---\n" + e.LogTail
	}
	return msg
}

func (e *NodeError) Unwrap() error { return e.Err }

// LogTail returns the last lines of a home's daemon.out (or daemon.log
// when daemon.out is empty).
func LogTail(home string, lines int) string {
	for _, name := range []string{DaemonOutFile, "daemon.log"} {
		if t := tailFile(filepath.Join(home, name), lines); t != "" {
			return t
		}
	}
	return ""
}

func tailFile(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-window, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, window))
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	ls := bytes.Split(b, []byte{'\n'})
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte{'\n'}))
}

// Client returns an API client for a node, with the token from its home.
func Client(n Node) (*api.Client, error) {
	tok, err := node.ReadAPIToken(n.Home)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	cl, err := api.NewClient(n.API, tok, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	cl.Home = n.Home
	return cl, nil
}

// NodeStatus is one line of Status.
type NodeStatus struct {
	Name    string   `json:"name"`
	PID     int      `json:"pid,omitempty"`
	Running bool     `json:"running"` // a live daemon owns daemon.pid
	API     string   `json:"api"`
	PeerID  string   `json:"peer_id"`
	Up      bool     `json:"up"` // the API answered
	Height  uint64   `json:"height"`
	Peers   int      `json:"peers"`
	Syncing bool     `json:"syncing"`
	Roles   []string `json:"roles"`
	Error   string   `json:"error,omitempty"`
}

// Status asks every node of the network, in parallel, for its height and
// peers. A node that does not answer has Up false and Error set; Status
// itself does not fail.
func Status(ctx context.Context, nw *Network) []NodeStatus {
	out := make([]NodeStatus, len(nw.Nodes))
	var wg sync.WaitGroup
	for i, n := range nw.Nodes {
		out[i] = NodeStatus{Name: n.Name, API: n.API, PeerID: n.PeerID, Roles: n.Roles}
		out[i].PID, out[i].Running = livePID(n.Home)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := nodeStatus(ctx, n)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Up, out[i].Height, out[i].Peers, out[i].Syncing = true, st.Height, st.Peers, st.Syncing
			if len(st.Roles) > 0 {
				out[i].Roles = st.Roles
			}
		}()
	}
	wg.Wait()
	return out
}

func nodeStatus(ctx context.Context, n Node) (api.Status, error) {
	cl, err := Client(n)
	if err != nil {
		return api.Status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Status(ctx)
}

// WaitOptions control WaitReady.
type WaitOptions struct {
	// Nodes to wait for; empty: all.
	Nodes []string
	// MinHeight every chosen node must reach. Zero: the API answering is
	// enough.
	MinHeight uint64
	// Progress receives a line each time the picture changes. Nil: none.
	Progress func(string)
	// Failed, when set, is polled; a non-nil error ends the wait (e.g.
	// Cluster.ExitError: a daemon died).
	Failed func() error
	// Poll interval. Zero: 200ms.
	Poll time.Duration
}

// WaitReady returns when every chosen node's API answers and its height is
// at least MinHeight. When ctx ends first, the error names the nodes not
// ready and shows the end of the first one's log.
func WaitReady(ctx context.Context, nw *Network, o WaitOptions) error {
	nodes, err := nw.Select(o.Nodes)
	if err != nil {
		return err
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	t := time.NewTicker(o.Poll)
	defer t.Stop()
	var last string
	for {
		if o.Failed != nil {
			if err := o.Failed(); err != nil {
				return err
			}
		}
		sts := Status(ctx, &Network{ChainID: nw.ChainID, Dir: nw.Dir, Nodes: nodes})
		var notReady []NodeStatus
		var parts []string
		for _, s := range sts {
			switch {
			case !s.Up:
				parts = append(parts, s.Name+" starting")
				notReady = append(notReady, s)
			case s.Height < o.MinHeight:
				parts = append(parts, fmt.Sprintf("%s height %d", s.Name, s.Height))
				notReady = append(notReady, s)
			default:
				parts = append(parts, fmt.Sprintf("%s height %d", s.Name, s.Height))
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if line := strings.Join(parts, ", "); o.Progress != nil && line != last {
			o.Progress(line)
			last = line
		}
		select {
		case <-ctx.Done():
			s := notReady[0]
			why := fmt.Sprintf("not ready (height %d, want %d)", s.Height, o.MinHeight)
			if !s.Up {
				why = "API not answering: " + s.Error
			}
			names := make([]string, len(notReady))
			for i, n := range notReady {
				names[i] = n.Name
			}
			n, _ := nw.Node(s.Name)
			return &NodeError{Node: s.Name, Err: fmt.Errorf("%s (waited for %v: %w)", why, names, ctx.Err()), LogTail: LogTail(n.Home, 20)}
		case <-t.C:
		}
	}
}

// RegisterProviders makes every node of the network a registered provider
// with the network's collateral, through each node's API, and waits until
// the chain has committed every registration. Nodes already registered are
// left alone. (The genesis has no provider field, so this runs once the
// chain is up.)
func RegisterProviders(ctx context.Context, nw *Network, progress func(string)) error {
	collateral := nw.Collateral
	if collateral == 0 {
		collateral = DefaultCollateral
	}
	pending := map[string]*api.Client{}
	for _, n := range nw.Nodes {
		cl, err := Client(n)
		if err != nil {
			return err
		}
		ps, err := cl.ProviderStatus(ctx)
		if err != nil {
			return fmt.Errorf("register provider %s: %w", n.Name, err)
		}
		if ps.Registered {
			continue
		}
		res, err := cl.ProviderRegister(ctx, collateral)
		if err != nil {
			return fmt.Errorf("register provider %s: %w", n.Name, err)
		}
		if res.Status == "rejected" {
			return fmt.Errorf("register provider %s: rejected: %s", n.Name, res.Error)
		}
		pending[n.Name] = cl
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for len(pending) > 0 {
		if progress != nil {
			names := make([]string, 0, len(pending))
			for n := range pending {
				names = append(names, n)
			}
			slices.Sort(names)
			progress(fmt.Sprintf("registering providers (collateral %d): waiting for %v", collateral, names))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register providers: %w", ctx.Err())
		case <-t.C:
		}
		for name, cl := range pending {
			ps, err := cl.ProviderStatus(ctx)
			if err != nil {
				var ae *api.Error
				if errors.As(err, &ae) && !errors.Is(err, api.ErrUnavailable) {
					return fmt.Errorf("register provider %s: %w", name, err)
				}
				continue // the node is busy or restarting: ask again
			}
			if ps.Registered {
				delete(pending, name)
			}
		}
	}
	return nil
}

// WaitOffers waits until node's view of the market holds at least min
// live offers (providers gossip them every offer interval).
func WaitOffers(ctx context.Context, n Node, min int) error {
	cl, err := Client(n)
	if err != nil {
		return err
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	seen := 0
	for {
		offers, err := cl.Offers(ctx)
		if err == nil {
			seen = len(offers)
			if seen >= min {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d offers on %s (saw %d): %w", min, n.Name, seen, ctx.Err())
		case <-t.C:
		}
	}
}
