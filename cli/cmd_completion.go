package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

// bashCompletion asks the binary itself for completions (urfave/cli's
// --generate-bash-completion), so it is always in step with the commands.
const bashCompletion = `# bash completion for bourse; load with: source <(bourse completion bash)
_bourse_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == "-"* ]]; then
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "${cur}" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _bourse_complete bourse
`

const zshCompletion = `#compdef bourse
# zsh completion for bourse; load with: source <(bourse completion zsh)
_bourse() {
  local -a opts
  opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  _describe 'values' opts
}
compdef _bourse bourse
`

func completionCommand(Env) *ucli.Command {
	return &ucli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Action: func(c *ucli.Context) error {
			switch c.Args().First() {
			case "bash", "":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			default:
				return usagef("unknown shell %q: bash or zsh", c.Args().First())
			}
		},
	}
}
