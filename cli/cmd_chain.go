package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
	ucli "github.com/urfave/cli/v2"
)

func chainCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "chain", Usage: "inspect the chain", Subcommands: []*ucli.Command{
		{Name: "status", Usage: "show height, peers and roles", Action: withClient(chainStatus)},
		{Name: "block", Usage: "show a block (default: the latest)", ArgsUsage: "[HEIGHT]", Action: withClient(chainBlock)},
		{Name: "tx", Usage: "show a transaction", ArgsUsage: "HASH", Action: withClient(chainTx)},
		{Name: "validators", Usage: "list validators", Action: withClient(chainValidators)},
		chainAuditCommand(),
	}}
}

func chainStatus(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	st, err := cl.Status(c.Context)
	if err != nil {
		return err
	}
	return output(c, st, func(w io.Writer) error {
		sync := "in sync"
		if st.Syncing {
			sync = "syncing"
		}
		return printKV(w, [][2]string{
			{"chain", st.ChainID},
			{"height", fmt.Sprintf("%d (%s)", st.Height, sync)},
			{"latest block", fmt.Sprintf("%s at %s", orDash(st.LatestBlockHash), when(st.LatestBlockTime))},
			{"node", fmt.Sprintf("%s (%s)", st.Moniker, st.PeerID)},
			{"peers", strconv.Itoa(st.Peers)},
			{"address", st.Address},
			{"roles", strings.Join(st.Roles, ", ")},
			{"versions", fmt.Sprintf("node %s, api %s, protocol %s", st.Versions.Node, st.Versions.API, st.Versions.Protocol)},
		})
	})
}

func chainBlock(c *ucli.Context, cl *api.Client) error {
	var b api.Block
	var err error
	a := args(c)
	switch len(a) {
	case 0:
		b, err = cl.LatestBlock(c.Context)
	case 1:
		h, perr := strconv.ParseUint(a[0], 10, 64)
		if perr != nil {
			return usagef("block height %q: want a number ('bourse chain block' shows the latest)", a[0])
		}
		b, err = cl.Block(c.Context, h)
		if isNotFound(err) {
			return fmt.Errorf("no block at height %d yet ('bourse chain status' shows the height)", h)
		}
	default:
		return usagef("'bourse chain block' takes at most one HEIGHT")
	}
	if err != nil {
		return err
	}
	return output(c, b, func(w io.Writer) error {
		if err := printKV(w, [][2]string{
			{"height", u64(b.Height)},
			{"hash", b.Hash},
			{"previous", orDash(b.PrevHash)},
			{"time", when(b.Time)},
			{"proposer", b.Proposer},
			{"round", strconv.Itoa(int(b.Round))},
			{"state root", b.StateRoot},
			{"transactions", strconv.Itoa(b.TxCount)},
		}); err != nil {
			return err
		}
		if len(b.Txs) == 0 {
			return nil
		}
		fmt.Fprintln(w)
		rows := make([][]string, len(b.Txs))
		for i, t := range b.Txs {
			rows[i] = []string{t.Hash, t.Type, orDash(t.From)}
		}
		return printTable(w, []string{"HASH", "TYPE", "FROM"}, rows)
	})
}

func chainTx(c *ucli.Context, cl *api.Client) error {
	hash, err := oneArg(c, "HASH")
	if err != nil {
		return err
	}
	t, err := cl.Tx(c.Context, hash)
	if isNotFound(err) {
		return fmt.Errorf("no committed transaction %s (it may still be in the mempool)", hash)
	}
	if err != nil {
		return err
	}
	return output(c, t, func(w io.Writer) error {
		pairs := [][2]string{
			{"hash", t.Hash}, {"type", t.Type}, {"height", u64(t.Height)}, {"index", strconv.Itoa(t.Index)},
			{"from", t.From}, {"nonce", u64(t.Nonce)}, {"fee", u64(t.Fee)}, {"status", t.Status},
		}
		if t.Log != "" {
			pairs = append(pairs, [2]string{"log", t.Log})
		}
		for _, e := range t.Events {
			ev := fmt.Sprintf("%s %d (%s)", e.Type, e.Amount, e.Address)
			if e.JobID != "" {
				ev += " job " + e.JobID
			}
			pairs = append(pairs, [2]string{"event", ev})
		}
		if len(t.Body) > 0 {
			pairs = append(pairs, [2]string{"body", string(t.Body)})
		}
		return printKV(w, pairs)
	})
}

func chainValidators(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	vs, err := cl.Validators(c.Context)
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []api.Validator{}
	}
	return output(c, vs, func(w io.Writer) error {
		rows := make([][]string, len(vs))
		for i, v := range vs {
			rows[i] = []string{v.Address, u64(v.Stake), u64(v.Power)}
		}
		return printTable(w, []string{"ADDRESS", "STAKE", "POWER"}, rows)
	})
}

func stakeCommand(Env) *ucli.Command {
	stake := func(name string, bond bool) *ucli.Command {
		return &ucli.Command{Name: name, Usage: name + " stake from the node's wallet", ArgsUsage: "AMOUNT",
			Action: withClient(func(c *ucli.Context, cl *api.Client) error {
				s, err := oneArg(c, "AMOUNT")
				if err != nil {
					return err
				}
				n, err := parseAmount("AMOUNT", s)
				if err != nil {
					return err
				}
				var r api.TxResult
				next := "the node validates once the bond takes effect (two heights); see 'bourse chain validators'"
				if bond {
					r, err = cl.Bond(c.Context, n)
				} else {
					r, err = cl.Unbond(c.Context, n)
					next = "unbonded stake returns to the balance after the unbonding period"
				}
				if err != nil {
					return err
				}
				return txOutput(c, fmt.Sprintf("%s %d", name, n), r, next)
			})}
	}
	return &ucli.Command{Name: "stake", Usage: "bond and unbond stake", Subcommands: []*ucli.Command{
		stake("bond", true), stake("unbond", false),
	}}
}

func balanceCommand() *ucli.Command {
	return &ucli.Command{Name: "balance", Usage: "show an account's balance (default: the node's)", ArgsUsage: "[ADDR]",
		Action: withClient(func(c *ucli.Context, cl *api.Client) error {
			a := args(c)
			addr := ""
			if len(a) > 0 {
				addr = a[0]
			}
			switch {
			case len(a) > 1:
				return usagef("'bourse wallet balance' takes at most one ADDR")
			case addr == "":
				st, err := cl.Status(c.Context)
				if err != nil {
					return err
				}
				addr = st.Address
			default:
				if _, err := wallet.ParseAddress(addr); err != nil {
					return usagef("ADDR %q: %v", addr, err)
				}
			}
			acct, err := cl.Account(c.Context, addr)
			if err != nil {
				return err
			}
			return output(c, acct, func(w io.Writer) error {
				a := acct
				return printKV(w, [][2]string{
					{"address", a.Address}, {"balance", u64(a.Balance)}, {"bonded", u64(a.Bonded)},
					{"unbonding", u64(a.Unbonding)},
					{"collateral", u64(a.Collateral)}, {"nonce", u64(a.Nonce)},
				})
			})
		})}
}

func sendCommand() *ucli.Command {
	return &ucli.Command{Name: "send", Usage: "send funds from the node's wallet", ArgsUsage: "TO AMOUNT",
		Action: withClient(func(c *ucli.Context, cl *api.Client) error {
			a := args(c)
			if len(a) != 2 {
				return usagef("'bourse wallet send' takes TO and AMOUNT")
			}
			to := a[0]
			if _, err := wallet.ParseAddress(to); err != nil {
				return usagef("TO %q: %v", to, err)
			}
			n, err := parseAmount("AMOUNT", a[1])
			if err != nil {
				return err
			}
			r, err := cl.Send(c.Context, to, n)
			if err != nil {
				return err
			}
			return txOutput(c, fmt.Sprintf("send %d to %s", n, to), r, "")
		})}
}
