package node

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
	"github.com/libp2p/go-libp2p/core/peer"
)

// rttList is the distance list this node signs into its bids: the
// providers in the book whose peers the host has measured (p2p's ping
// EWMA), nearest first, at most market.MaxRTTEntries, never this node's
// own provider (a bid is never placed there). Unmeasured providers are
// left out: the list says what the node knows, nothing else.
func (m *marketService) rttList(now time.Time) []market.PeerRTT {
	offers, addrs := m.book.Offers()
	self := m.n.key.Address()
	var out []market.PeerRTT
	for i, o := range offers {
		if addrs[i] == self || o.Expires <= now.UnixMilli() {
			continue
		}
		pid, err := peer.Decode(o.PeerID)
		if err != nil {
			continue
		}
		lat := m.n.host.Latency(pid)
		if lat <= 0 {
			continue
		}
		ms := min((lat+time.Millisecond-1)/time.Millisecond, market.MaxRTTMs)
		out = append(out, market.PeerRTT{Provider: addrs[i], Ms: uint32(ms)})
	}
	sortRTT(out)
	return out[:min(len(out), market.MaxRTTEntries)]
}

func sortRTT(xs []market.PeerRTT) {
	slices.SortFunc(xs, func(a, b market.PeerRTT) int {
		if c := cmp.Compare(a.Ms, b.Ms); c != 0 {
			return c
		}
		return bytes.Compare(a.Provider[:], b.Provider[:])
	})
}

// placeBid fills the placement fields of a bid from a validated spec's
// constraints and the node's distance list: several weighted regions
// (any of, sorted, with their weights; Near lists them heaviest first so
// that nearest without a measured provider tries the preferred region
// first), the minimum reputation, and the RTT list.
func placeBid(b *market.Bid, c api.Constraints, rtt []market.PeerRTT) {
	if len(c.Regions) > 0 {
		b.Constraints.Regions = b.Constraints.Regions[:0]
		for r := range c.Regions {
			b.Constraints.Regions = append(b.Constraints.Regions, r)
		}
		slices.Sort(b.Constraints.Regions)
		b.Constraints.RegionWeights = make([]uint32, len(b.Constraints.Regions))
		for i, r := range b.Constraints.Regions {
			b.Constraints.RegionWeights[i] = c.Regions[r]
		}
		b.Near = slices.Clone(b.Constraints.Regions)
		slices.SortStableFunc(b.Near, func(x, y string) int { return cmp.Compare(c.Regions[y], c.Regions[x]) })
	}
	b.Constraints.MinReputation = c.MinReputation
	b.RTT = rtt
}

// perfView is the API's shape of a provider's learnt figures at block
// time now.
func perfView(p market.Perf, now int64) *api.Performance {
	return &api.Performance{
		Jobs:         p.Jobs,
		RunTimeRatio: float64(p.SlowPpm) / 1e6,
		FailureRate:  float64(p.FailPpm) / 1e6,
		TimeoutRate:  float64(p.TimeoutPpm) / 1e6,
		PaidAvg:      p.PaidAvg,
		ClientRTTMs:  p.RTTMs,
		Cost:         float64(p.Cost(now)) / 1e6,
	}
}

// providerFigures reads a provider's reputation and performance figures
// from the node's chain state.
func (m *marketService) providerFigures(a wallet.Address) (uint32, *api.Performance) {
	st := m.n.drv.State()
	p, ok, err := st.Provider(a)
	if err != nil || !ok {
		return 0, nil
	}
	perf, err := st.Perf(a)
	if err != nil {
		return p.Reputation(), nil
	}
	return p.Reputation(), perfView(perf, st.Globals().Time)
}

// hostLoad measures the host's CPU and memory utilisation from /proc, per
// mille: CPU over the time since the previous call (busy jiffies over all
// jiffies, from /proc/stat), memory as 1 − MemAvailable/MemTotal (from
// /proc/meminfo). Where /proc is missing (not Linux) it reports
// nothing, and offers carry the runtime's reservations only. Safe for
// concurrent use.
type hostLoad struct {
	mu          sync.Mutex
	root        string // "" is /proc (tests point it elsewhere)
	idle, total uint64 // the previous /proc/stat sample
	sampled     bool
}

// sample returns CPU and memory utilisation in per mille; ok is false if
// /proc could not be read (then both are 0). The first call has no
// previous CPU sample and reports the average since boot.
func (h *hostLoad) sample() (cpu, mem uint32, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	root := cmp.Or(h.root, "/proc")
	stat, err1 := os.ReadFile(root + "/stat")
	info, err2 := os.ReadFile(root + "/meminfo")
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	idle, total, err := parseProcStat(stat)
	if err != nil {
		return 0, 0, false
	}
	memTotal, memAvail, err := parseMeminfo(info)
	if err != nil {
		return 0, 0, false
	}
	di, dt := idle, total
	if h.sampled && total > h.total && idle >= h.idle {
		di, dt = idle-h.idle, total-h.total
	}
	h.idle, h.total, h.sampled = idle, total, true
	if dt > 0 && di <= dt {
		cpu = uint32((dt - di) * 1000 / dt)
	}
	if memTotal > 0 && memAvail <= memTotal {
		mem = uint32((memTotal - memAvail) * 1000 / memTotal)
	}
	return min(cpu, market.MaxLoad), min(mem, market.MaxLoad), true
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: idle
// (idle + iowait) and total jiffies.
func parseProcStat(b []byte) (idle, total uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		for i, x := range f[1:] {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			if total+v < total {
				return 0, 0, fmt.Errorf("/proc/stat: cpu jiffies overflow")
			}
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no cpu line")
}

// parseMeminfo reads MemTotal and MemAvailable (kB) from /proc/meminfo.
func parseMeminfo(b []byte) (total, avail uint64, err error) {
	var haveT, haveA bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			total, haveT = n, true
		case "MemAvailable":
			avail, haveA = n, true
		}
	}
	if !haveT || !haveA {
		return 0, 0, fmt.Errorf("/proc/meminfo: no MemTotal or MemAvailable")
	}
	return total, avail, nil
}
