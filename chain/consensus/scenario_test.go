package consensus

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/wallet"
)

var flagUpdate = flag.Bool("update", false, "rewrite the golden output of testdata/*.txt scenarios")

// Scenario scripts (testdata/*.txt) drive one validator's State by hand and
// record every output, so the protocol can be read step by step. Each block
// is a command, a line "----", and the expected output, ended by a blank
// line; lines starting with # are comments. Commands:
//
//	validators P0 P1 ...          the set v0, v1, ... with these powers; prints the proposer rotation
//	start self=vI [idle=MS]        New + Start as validator vI at height 1 (idle: Config.IdleWait)
//	proposal from=vI round=R value=X [vr=R]
//	prevote|precommit from=vI[,vJ...] round=R value=X|nil [height=H]
//	                               (xI names a key outside the set)
//	timeout step=propose|prevote|precommit|new-height|idle round=R [height=H]
//	wake [height=H]                the application has work (Wake)
//	ready round=R value=X          the application's value for our proposal
//	valid|invalid value=X          the application's verdict on a value
//	next                           NextHeight after a decision
//	restart                        crash and restart from the last Persist
//	state                          print height, round, step, lock, valid value
//
// Values are named by a letter; value X is the bytes "block X".
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runScenario(t, file) })
	}
}

type scriptBlock struct {
	comments []string
	cmd      string
	want     []string
}

func parseScript(t *testing.T, data string) []scriptBlock {
	var blocks []scriptBlock
	lines := strings.Split(data, "\n")
	var cur scriptBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "#") || (strings.TrimSpace(l) == "" && cur.cmd == ""):
			cur.comments = append(cur.comments, l)
		default:
			cur.cmd = l
			if i+1 >= len(lines) || lines[i+1] != "----" {
				t.Fatalf("line %d: command %q not followed by ----", i+1, l)
			}
			i += 2
			for ; i < len(lines) && lines[i] != ""; i++ {
				cur.want = append(cur.want, lines[i])
			}
			blocks = append(blocks, cur)
			cur = scriptBlock{}
		}
	}
	return blocks
}

func runScenario(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseScript(t, string(data))
	sc := &scenario{t: t, names: map[wallet.Address]string{}, values: map[BlockID]string{}}
	var out strings.Builder
	failed := false
	for _, b := range blocks {
		got := sc.run(b.cmd)
		if !slices.Equal(got, b.want) && !*flagUpdate {
			t.Errorf("%s: %s\ngot:\n\t%s\nwant:\n\t%s", file, b.cmd, strings.Join(got, "\n\t"), strings.Join(b.want, "\n\t"))
			failed = true
		}
		for _, c := range b.comments {
			out.WriteString(c + "\n")
		}
		out.WriteString(b.cmd + "\n----\n")
		for _, g := range got {
			out.WriteString(g + "\n")
		}
		out.WriteString("\n")
	}
	if *flagUpdate && !failed {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type scenario struct {
	t         *testing.T
	keys      []wallet.PrivateKey
	vs        *ValidatorSet
	names     map[wallet.Address]string
	values    map[BlockID]string
	self      int
	cfg       Config
	st        *State
	persisted *SignerState
	now       int64
}

func (sc *scenario) value(name string) ([]byte, BlockID) {
	if name == "nil" {
		return nil, BlockID{}
	}
	v := []byte("block " + name)
	id := idOf(v)
	sc.values[id] = name
	return v, id
}

func (sc *scenario) valName(id BlockID) string {
	if id.IsNil() {
		return "nil"
	}
	if n, ok := sc.values[id]; ok {
		return n
	}
	return id.String()
}

func (sc *scenario) key(name string) wallet.PrivateKey {
	if rest, ok := strings.CutPrefix(name, "x"); ok { // a key outside the set
		i, err := strconv.Atoi(rest)
		if err != nil {
			sc.t.Fatalf("bad outsider %q", name)
		}
		k := testKey(sc.t, 1000+i)
		sc.names[k.Address()] = name
		return k
	}
	i, err := strconv.Atoi(strings.TrimPrefix(name, "v"))
	if err != nil || i < 0 || i >= len(sc.keys) {
		sc.t.Fatalf("bad validator %q", name)
	}
	return sc.keys[i]
}

func (sc *scenario) run(cmd string) []string {
	fields := strings.Fields(cmd)
	args := map[string]string{}
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		}
	}
	num := func(k string, def int) int {
		s, ok := args[k]
		if !ok {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			sc.t.Fatalf("%s: bad %s", cmd, k)
		}
		return n
	}
	sc.now += 10
	step := func(ev Event) []string { return sc.describe(sc.st.Step(Input{Now: sc.now, Event: ev})) }
	switch fields[0] {
	case "validators":
		var powers []uint64
		for _, f := range fields[1:] {
			p, _ := strconv.ParseUint(f, 10, 64)
			powers = append(powers, p)
		}
		sc.keys, sc.vs = testValidators(sc.t, powers...)
		for i, k := range sc.keys {
			sc.names[k.Address()] = fmt.Sprintf("v%d", i)
		}
		var rot []string
		for r := int32(0); r < 6; r++ {
			rot = append(rot, fmt.Sprintf("r%d=%s", r, sc.names[sc.vs.Proposer(r).Address]))
		}
		return []string{fmt.Sprintf("total power %d, proposers at height 1: %s", sc.vs.TotalPower(), strings.Join(rot, " "))}
	case "start":
		sc.self = slices.IndexFunc(sc.keys, func(k wallet.PrivateKey) bool { return k.Address() == sc.key(args["self"]).Address() })
		sc.cfg = fastConfig()
		sc.cfg.IdleWait = time.Duration(num("idle", 0)) * time.Millisecond
		st, err := New(sc.cfg, testChain, sc.keys[sc.self], 1, sc.vs, nil)
		if err != nil {
			sc.t.Fatal(err)
		}
		sc.st = st
		return sc.describe(st.Start(sc.now))
	case "restart":
		st, err := New(sc.cfg, testChain, sc.keys[sc.self], sc.st.Height(), sc.st.ValidatorSet(), sc.persisted)
		if err != nil {
			sc.t.Fatal(err)
		}
		sc.st = st
		return sc.describe(st.Start(sc.now))
	case "proposal":
		v, _ := sc.value(args["value"])
		p := signProposal(sc.key(args["from"]), uint64(num("height", int(sc.st.Height()))), int32(num("round", 0)), v, int32(num("vr", -1)))
		return step(ReceiveProposal{p})
	case "prevote", "precommit":
		t := Prevote
		if fields[0] == "precommit" {
			t = Precommit
		}
		_, id := sc.value(args["value"])
		var out []string
		for _, from := range strings.Split(args["from"], ",") {
			v := signVote(sc.key(from), t, uint64(num("height", int(sc.st.Height()))), int32(num("round", 0)), id, sc.now)
			for _, line := range step(ReceiveVote{v}) {
				out = append(out, from+": "+line)
			}
		}
		return out
	case "timeout":
		steps := map[string]RoundStep{"propose": StepPropose, "prevote": StepPrevote, "precommit": StepPrecommit, "new-height": StepNewHeight, "idle": StepIdle}
		return step(Timeout{Height: uint64(num("height", int(sc.st.Height()))), Round: int32(num("round", 0)), Step: steps[args["step"]]})
	case "wake":
		return step(Wake{Height: uint64(num("height", int(sc.st.Height())))})
	case "ready":
		v, id := sc.value(args["value"])
		return step(ValueReady{Height: sc.st.Height(), Round: int32(num("round", 0)), BlockID: id, Value: v})
	case "valid", "invalid":
		v, id := sc.value(args["value"])
		return step(ValueValidity{Height: sc.st.Height(), BlockID: id, Value: v, Valid: fields[0] == "valid"})
	case "next":
		return step(NextHeight{})
	case "state":
		lr, lid := sc.st.Locked()
		return []string{fmt.Sprintf("height %d round %d step %s locked %d:%s valid %d:%s", sc.st.Height(), sc.st.Round(), sc.st.RoundStep(),
			lr, sc.valName(lid), sc.st.valid.round, sc.valName(sc.st.valid.id))}
	}
	sc.t.Fatalf("unknown command %q", cmd)
	return nil
}

func (sc *scenario) describe(out []Output) []string {
	var lines []string
	for _, o := range out {
		switch o := o.(type) {
		case Broadcast:
			if p := o.Message.Proposal; p != nil {
				lines = append(lines, fmt.Sprintf("broadcast proposal h=%d r=%d %s vr=%d", p.Height, p.Round, sc.valName(p.BlockID), p.ValidRound))
			} else {
				v := o.Message.Vote
				lines = append(lines, fmt.Sprintf("broadcast %s h=%d r=%d %s", v.Type, v.Height, v.Round, sc.valName(v.BlockID)))
			}
		case Persist:
			sc.persisted = &o.State
			s := o.State
			lines = append(lines, fmt.Sprintf("persist signed=%d/%d/%s locked=%d:%s valid=%d:%s votes=%d", s.Height, s.Round, s.Step,
				s.LockedRound, sc.valName(s.LockedBlockID), s.ValidRound, sc.valName(s.ValidBlockID), len(s.Votes)))
		case ScheduleTimeout:
			lines = append(lines, fmt.Sprintf("schedule timeout %s h=%d r=%d in %v", o.Step, o.Height, o.Round, o.Duration))
		case RequestValue:
			lines = append(lines, fmt.Sprintf("request value h=%d r=%d", o.Height, o.Round))
		case ValidateValue:
			lines = append(lines, fmt.Sprintf("validate h=%d r=%d %s", o.Height, o.Round, sc.valName(o.BlockID)))
		case Decide:
			var who []string
			var power uint64
			for _, v := range o.Commit.Precommits {
				who = append(who, sc.names[v.Validator])
				val, _ := sc.vs.ByAddress(v.Validator)
				power += val.Power
			}
			verr := "verifies"
			if err := o.Commit.Verify(testChain, sc.st.ValidatorSet()); err != nil {
				verr = "DOES NOT VERIFY: " + err.Error()
			}
			lines = append(lines, fmt.Sprintf("decide h=%d %s in round %d, commit %s (power %d of %d) %s", o.Height, sc.valName(o.BlockID),
				o.Commit.Round, strings.Join(who, ","), power, sc.vs.TotalPower(), verr))
		case Evidence:
			e := o.Evidence
			lines = append(lines, fmt.Sprintf("evidence %s double %s h=%d r=%d: %s and %s", sc.names[e.A.Validator], e.A.Type, e.A.Height, e.A.Round,
				sc.valName(e.A.BlockID), sc.valName(e.B.BlockID)))
		case Rejected:
			lines = append(lines, "rejected: "+o.Err.Error())
		}
	}
	return lines
}
