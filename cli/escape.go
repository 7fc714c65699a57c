package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// flagRaw names the flag that writes job output byte for byte even to a
// terminal.
const flagRaw = "raw"

// termSafe renders the characters a terminal would act on visibly, as
// \xNN: C0 controls other than newline and tab (escape sequences that
// clear the screen, set the window title or write the clipboard through
// OSC 52, carriage returns that overwrite a line, bells), DEL, the C1
// controls U+0080 to U+009F (a terminal may take U+009B as an escape
// sequence introducer) and bytes that are not UTF-8. A backslash itself
// stays as is: the output is for reading, not for decoding.
func termSafe(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 && r != '\n' && r != '\t', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isTerminalWriter reports whether w is a terminal, through
// Env.IsTerminalWriter when set.
func isTerminalWriter(env Env, w io.Writer) bool {
	if env.IsTerminalWriter != nil {
		return env.IsTerminalWriter(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// jobText returns how text a job produced (its stdout or stderr, which
// the provider controls) is written to w: escaped by termSafe when w is a
// terminal, byte for byte with --raw or when w is a file or a pipe.
func jobText(c *ucli.Context, w io.Writer) func(string) string {
	if flagBool(c, flagRaw) || !isTerminalWriter(envFor(c), w) {
		return func(s string) string { return s }
	}
	return termSafe
}

func rawFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: flagRaw, Usage: "write the job's output byte for byte, even control characters to a terminal"}
}
