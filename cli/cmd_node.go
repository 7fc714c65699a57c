package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/bourse-net/bourse/node"
	ucli "github.com/urfave/cli/v2"
)

func nodeCommand(env Env) *ucli.Command {
	return &ucli.Command{Name: "node", Usage: "this node's identity, for forming a network with other operators", Subcommands: []*ucli.Command{
		{
			Name:  "id",
			Usage: "print the peer id, addresses, validator public key and wallet address (no daemon needed)",
			Description: "Reads the home only. Hand the --json output to whoever assembles the genesis:\n" +
				"'bourse genesis add-validator genesis.json --from THAT_FILE --stake N' takes it as it is;\n" +
				"bootstrap_addrs are what other nodes put after 'bourse init --bootstrap'.",
			Action: func(c *ucli.Context) error {
				if err := flagsOnly(c); err != nil {
					return err
				}
				home, _, err := requireHome(c)
				if err != nil {
					return err
				}
				id, err := node.ReadIdentity(home)
				if err != nil {
					return fmt.Errorf("read identity of %s: %w", home, err)
				}
				return output(c, id, func(w io.Writer) error {
					pairs := [][2]string{
						{"moniker", id.Moniker},
						{"chain id", id.ChainID},
						{"peer id", id.PeerID},
						{"listen", strings.Join(id.ListenAddrs, " ")},
						{"announce", orDash(strings.Join(id.AnnounceAddrs, " "))},
						{"wallet key", id.WalletKey},
						{"address", id.Address.String()},
						{"pub key", fmt.Sprintf("%x", id.PubKey[:])},
						{"api", id.API},
						{"api fingerprint", orDash(id.APIFingerprint)},
						{"genesis hash", orDash(id.GenesisHash)},
					}
					if err := printKV(w, pairs); err != nil {
						return err
					}
					fmt.Fprintln(w, "bootstrap addresses:")
					for _, a := range id.BootstrapAddrs {
						fmt.Fprintf(w, "  %s\n", a)
					}
					if len(id.BootstrapAddrs) == 0 {
						fmt.Fprintln(w, "  (none: set p2p.announce_addrs or a listen address with a fixed port)")
					}
					return nil
				})
			},
		},
	}}
}
