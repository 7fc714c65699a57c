package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bourse-net/bourse/node/api"
	ucli "github.com/urfave/cli/v2"
)

func isNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }

func rangeFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.Uint64Flag{Name: "from", Usage: "first height (default: genesis)"},
		&ucli.Uint64Flag{Name: "to", Usage: "last height (default: the tip)"},
	}
}

func marketCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "market", Usage: "inspect the market", Subcommands: []*ucli.Command{
		{Name: "offers", Usage: "list capacity offers", Action: withClient(marketOffers)},
		{Name: "bids", Usage: "list open bids", Action: withClient(marketBids)},
		{Name: "matches", Usage: "list matches", Action: withClient(marketMatches),
			Flags: append(rangeFlags(), &ucli.IntFlag{Name: "limit", Usage: "at most this many, newest first (0: all)"})},
		{Name: "match", Usage: "show a match with the transactions that committed and settled it", ArgsUsage: "ID", Action: withClient(marketMatch)},
		{Name: "stats", Usage: "per-provider load, earnings and fairness", Action: withClient(marketStats), Flags: rangeFlags()},
	}}
}

func marketOffers(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	offers, err := cl.Offers(c.Context)
	if err != nil {
		return err
	}
	if offers == nil {
		offers = []api.Offer{}
	}
	return output(c, offers, func(w io.Writer) error {
		if len(offers) == 0 {
			fmt.Fprintln(w, "no live offers")
			hint(w, "providers gossip offers every few seconds; check 'bourse chain status' for peers")
			return nil
		}
		rows := make([][]string, len(offers))
		for i, o := range offers {
			rows[i] = []string{short(o.ID), o.Provider, fmt.Sprintf("%dm/%dMiB", o.Free.CPU, o.Free.Memory),
				fmt.Sprintf("%.0f%%", 100*o.Load), fmt.Sprintf("%d/%d/%d", o.Prices.PerCPUSecond, o.Prices.PerGiBSecond, o.Prices.PerJob),
				orDash(o.Region), strings.Join(o.Executors, ",")}
		}
		return printTable(w, []string{"OFFER", "PROVIDER", "FREE", "LOAD", "PRICE cpu-s/GiB-s/job", "REGION", "EXECUTORS"}, rows)
	})
}

func marketBids(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	bids, err := cl.Bids(c.Context)
	if err != nil {
		return err
	}
	if bids == nil {
		bids = []api.Bid{}
	}
	return output(c, bids, func(w io.Writer) error {
		rows := make([][]string, len(bids))
		for i, b := range bids {
			rows[i] = []string{short(b.ID), b.Client, b.Executor, fmt.Sprintf("%dm/%dMiB", b.Resources.CPU, b.Resources.Memory),
				u64(b.MaxPrice), b.Placement, when(b.Deadline)}
		}
		return printTable(w, []string{"BID", "CLIENT", "EXECUTOR", "NEEDS", "MAX PRICE", "PLACEMENT", "DEADLINE"}, rows)
	})
}

func heightRange(c *ucli.Context) (api.MatchFilter, error) {
	f := api.MatchFilter{FromHeight: c.Uint64("from"), ToHeight: c.Uint64("to")}
	if f.ToHeight != 0 && f.FromHeight > f.ToHeight {
		return f, usagef("--from %d is above --to %d", f.FromHeight, f.ToHeight)
	}
	return f, nil
}

func marketMatches(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	f, err := heightRange(c)
	if err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 0 {
		return usagef("--limit %d: must not be negative", limit)
	}
	ms, err := allMatches(c.Context, cl, f, limit)
	if err != nil {
		return err
	}
	return output(c, ms, func(w io.Writer) error {
		rows := make([][]string, len(ms))
		for i, m := range ms {
			rows[i] = []string{short(m.ID), u64(m.Height), m.Client, m.Provider, u64(m.Price), u64(m.Escrow), m.State}
		}
		return printTable(w, []string{"MATCH", "HEIGHT", "CLIENT", "PROVIDER", "PRICE", "ESCROW", "STATE"}, rows)
	})
}

func marketStats(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	f, err := heightRange(c)
	if err != nil {
		return err
	}
	st, err := cl.MarketStats(c.Context, f.FromHeight, f.ToHeight)
	if err != nil {
		return err
	}
	return output(c, st, func(w io.Writer) error {
		fmt.Fprintf(w, "heights %d..%d: %d matches, volume %d, average price %d, fairness %.3f\n",
			st.FromHeight, st.ToHeight, st.Matches, st.Volume, st.AvgPrice, st.Fairness)
		fmt.Fprintf(w, "settlement: %d held in challenge windows, %d slashed, challenges won by providers %d, lost %d\n\n",
			st.Held, st.Slashed, st.ChallengesWon, st.ChallengesLost)
		rows := make([][]string, len(st.Providers))
		for i, p := range st.Providers {
			rows[i] = []string{p.Address, u64(p.Matches), fmt.Sprintf("%.0f%%", 100*p.Share), u64(p.Completed), u64(p.Failed),
				u64(p.TimedOut), u64(p.Earned), u64(p.Held), u64(p.Slashed), fmt.Sprintf("%d/%d", p.ChallengesWon, p.ChallengesLost),
				fmt.Sprintf("%.0f%%", 100*p.Utilization), u64(uint64(p.Reputation)), perfCost(p.Performance)}
		}
		return printTable(w, []string{"PROVIDER", "MATCHES", "SHARE", "DONE", "FAILED", "TIMED OUT", "EARNED", "HELD", "SLASHED", "CHALL W/L", "UTIL", "REP", "PERF COST"}, rows)
	})
}

// allMatches pages through the matches of f, newest first, until limit
// of them (0: all).
func allMatches(ctx context.Context, cl *api.Client, f api.MatchFilter, limit int) ([]api.Match, error) {
	out := []api.Match{}
	const page = 500
	for {
		f.Limit = page
		if limit > 0 {
			f.Limit = min(page, limit-len(out))
		}
		ms, err := cl.Matches(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if len(ms) == 0 {
			return out, nil
		}
		low := ms[len(ms)-1].Height
		if low <= max(f.FromHeight, 1) || f.ToHeight != 0 && low > f.ToHeight {
			// The end, or a daemon that does not page by height: stop
			// rather than ask for the same page again.
			return out, nil
		}
		f.ToHeight = low - 1
	}
}

func marketMatch(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	m, err := cl.Match(c.Context, id)
	if isNotFound(err) {
		return fmt.Errorf("no match %s on chain ('bourse market matches' lists them)", id)
	}
	if err != nil {
		return err
	}
	return output(c, m, func(w io.Writer) error {
		return printKV(w, [][2]string{
			{"match", m.ID}, {"state", m.State}, {"height", u64(m.Height)}, {"client", m.Client}, {"provider", m.Provider},
			{"price", u64(m.Price)}, {"escrow", u64(m.Escrow)}, {"deadline", when(m.Deadline)},
			{"match tx", orDash(m.MatchTx)}, {"settle tx", orDash(m.SettleTx)}, {"result hash", orDash(m.ResultHash)},
		})
	})
}

// perfCost shows a provider's learnt placement cost (0% best), or "-"
// before its first settled job.
func perfCost(p *api.Performance) string {
	if p == nil || p.Jobs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*p.Cost)
}

// perfLine shows a provider's learnt figures in one line.
func perfLine(p *api.Performance) string {
	if p == nil || p.Jobs == 0 {
		return "-"
	}
	s := fmt.Sprintf("cost %.1f%% over %d jobs: run time %.0f%% of timeout, failed %.0f%%, timed out %.0f%%, paid %d on average",
		100*p.Cost, p.Jobs, 100*p.RunTimeRatio, 100*p.FailureRate, 100*p.TimeoutRate, p.PaidAvg)
	if p.ClientRTTMs > 0 {
		s += fmt.Sprintf(", clients' round trip %d ms", p.ClientRTTMs)
	}
	return s
}
