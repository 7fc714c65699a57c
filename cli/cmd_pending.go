package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

// pending registers a command of the CLI surface whose part is not built
// yet. Its action (set by finish) says so and exits non-zero: no pretend
// output.
func pending(name, usage, args string) *ucli.Command {
	return &ucli.Command{Name: name, Usage: usage + " (not available yet)", ArgsUsage: args}
}

func notYet(path string) ucli.ActionFunc {
	return func(*ucli.Context) error {
		return fmt.Errorf("'%s' is not available yet in this build of Bourse", path)
	}
}
