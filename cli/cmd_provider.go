package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/bourse-net/bourse/node/api"
	ucli "github.com/urfave/cli/v2"
)

// notProvider turns the daemon's 503 into what to do about it.
func notProvider(err error) error {
	if errors.Is(err, api.ErrUnavailable) {
		return fmt.Errorf("this node sells no capacity: set enabled = true in the [provider] section of config.toml and restart the daemon (%v)", err)
	}
	return err
}

func providerCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "provider", Usage: "sell capacity", Subcommands: []*ucli.Command{
		{Name: "status", Usage: "show this provider's offer, jobs and earnings", Action: withClient(providerStatus)},
		{Name: "register", Usage: "bond collateral to become a provider", ArgsUsage: "--collateral AMOUNT",
			Flags:  []ucli.Flag{&ucli.StringFlag{Name: "collateral", Usage: "collateral to bond, in base units (required)"}},
			Action: withClient(providerRegister)},
		{Name: "offer", Usage: "show the offer this node gossips", Action: withClient(providerOffer)},
		{Name: "deregister", Usage: "stop taking jobs; open ones still settle, then 'provider withdraw' returns the collateral",
			Action: withClient(providerDeregister)},
		{Name: "withdraw", Usage: "return a deregistered provider's collateral to the wallet", Action: withClient(providerWithdraw)},
	}}
}

func providerStatus(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ps, err := cl.ProviderStatus(c.Context)
	if err != nil {
		return notProvider(err)
	}
	return output(c, ps, func(w io.Writer) error {
		jobs := make([]string, 0, len(ps.Jobs))
		for _, k := range api.SortedKeys(ps.Jobs) {
			jobs = append(jobs, fmt.Sprintf("%s %d", k, ps.Jobs[k]))
		}
		reg := "no"
		switch {
		case ps.Registered:
			reg = fmt.Sprintf("yes, collateral %d", ps.Collateral)
		case ps.Leaving && ps.WithdrawableAt != nil:
			reg = fmt.Sprintf("leaving: collateral %d withdrawable from %s once %d open matches settle", ps.Collateral, when(*ps.WithdrawableAt), ps.OpenMatches)
		}
		if err := printKV(w, [][2]string{
			{"address", ps.Address}, {"registered", reg},
			{"capacity", res(ps.Capacity)}, {"free", res(ps.Free)},
			{"executors", strings.Join(ps.Executors, ", ")},
			{"running", strconv.Itoa(ps.Running)}, {"jobs", orDash(strings.Join(jobs, ", "))},
			{"earned", u64(ps.Earned)}, {"slashed", u64(ps.Slashed)},
			{"held", fmt.Sprintf("%d in %d results (their challenge windows)", ps.Held, ps.HeldJobs)},
			{"released", u64(ps.Released)}, {"slashed on chain", u64(ps.SlashedTotal)},
			{"challenges", fmt.Sprintf("won %d, lost %d", ps.ChallengesWon, ps.ChallengesLost)},
			{"reputation", fmt.Sprintf("%d / 1000", ps.Reputation)}, {"performance", perfLine(ps.Performance)},
		}); err != nil {
			return err
		}
		if !ps.Registered && !ps.Leaving {
			hint(w, "register with 'bourse provider register --collateral AMOUNT' to receive jobs")
		}
		return nil
	})
}

func providerRegister(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if !c.IsSet("collateral") {
		return usagef("'bourse provider register' needs --collateral AMOUNT (base units to bond)")
	}
	n, err := parseAmount("--collateral", c.String("collateral"))
	if err != nil {
		return err
	}
	r, err := cl.ProviderRegister(c.Context, n)
	if err != nil {
		return notProvider(err)
	}
	return txOutput(c, fmt.Sprintf("register with collateral %d", n), r, "'bourse provider status' shows your offer and jobs")
}

func providerDeregister(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	r, err := cl.ProviderDeregister(c.Context)
	if err != nil {
		return notProvider(err)
	}
	return txOutput(c, "deregister", r, "open matches still settle; 'bourse provider status' shows when 'bourse provider withdraw' can return the collateral")
}

func providerWithdraw(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	r, err := cl.ProviderWithdraw(c.Context)
	if err != nil {
		return notProvider(err)
	}
	return txOutput(c, "withdraw collateral", r, "'bourse wallet balance' shows it")
}

func providerOffer(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ps, err := cl.ProviderStatus(c.Context)
	if err != nil {
		return notProvider(err)
	}
	if ps.Offer == nil {
		return errors.New("this node has not gossiped an offer yet: it offers after 'bourse provider register' and while it has free capacity")
	}
	o := *ps.Offer
	return output(c, o, func(w io.Writer) error {
		labels := make([]string, 0, len(o.Labels))
		for _, k := range api.SortedKeys(o.Labels) {
			labels = append(labels, k+"="+o.Labels[k])
		}
		return printKV(w, [][2]string{
			{"offer", o.ID}, {"provider", o.Provider}, {"capacity", res(o.Capacity)}, {"free", res(o.Free)},
			{"load", fmt.Sprintf("%.0f%%", 100*o.Load)},
			{"prices", fmt.Sprintf("%d per cpu-second, %d per GiB-second, %d per job", o.Prices.PerCPUSecond, o.Prices.PerGiBSecond, o.Prices.PerJob)},
			{"region", orDash(o.Region)}, {"labels", orDash(strings.Join(labels, ", "))},
			{"executors", strings.Join(o.Executors, ", ")}, {"expires", when(o.Expires)},
		})
	})
}
