package chain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// CheckInvariants scans the whole state and checks what must always hold:
// balances + bonded + unbonding + escrow + collateral + burned = supply
// (nothing minted after genesis, nothing lost), the counters in Globals
// equal the sums of the records they summarise, escrow equals the sum of
// open matches, each provider's reservation equals the resources of its
// open matches, deposits equal the sum of pending challenges' deposits,
// each provider's held results (count and pay) equal its held and
// challenged matches, and every unsettled match is in the due index at
// its due time. It costs a
// full scan: tests call it, and the driver after every block only when
// asked (driver.Config.CheckInvariants, [chain] check_invariants in a
// node's config.toml; a testnet turns it on).
func CheckInvariants(st *State) error {
	g := st.Globals()
	var balances, bonded, unbonding, escrow, collateral, deposits uint64
	heldJobs, heldPay := map[string]uint64{}, map[string]uint64{}
	provHeld := map[string][2]uint64{}
	reserved := map[string]market.Resources{}
	open := map[string]uint64{}
	openIDs := map[[32]byte]int64{}
	var openMatches []Match
	groups := map[[32]byte]Group{}                            // replica groups by id
	replicas := map[[32]byte][32]byte{}                       // replica job → its group id
	awaiting := map[[32]byte]bool{}                           // replica jobs awaiting their group
	indexed := map[[32]byte]int64{}                           // deadline index: job → deadline
	stakeRanks, ranks := map[string]bool{}, map[string]bool{} // rank keys the stakes imply, rank keys present
	unbondIdx, unbondBy := map[string]bool{}, map[string]bool{}
	var errs []error
	sum := func(acc *uint64, v uint64, what string) {
		s, err := add(*acc, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s overflows", what))
		}
		*acc = s
	}
	err := st.Each(func(k string, v []byte) error {
		dec := func(out any) error {
			if err := codec.Unmarshal(v, out); err != nil {
				return fmt.Errorf("%w: %q: %v", ErrCorruptState, printableKey(k), err)
			}
			return nil
		}
		switch {
		case strings.HasPrefix(k, pfxAccount):
			var a Account
			if err := dec(&a); err != nil {
				return err
			}
			sum(&balances, a.Balance, "balances")
		case strings.HasPrefix(k, pfxStake):
			var s Stake
			if err := dec(&s); err != nil {
				return err
			}
			sum(&bonded, s.Amount, "bonded")
			if s.Amount == 0 || k != addrKey(pfxStake, s.Address) {
				errs = append(errs, fmt.Errorf("stake record %q holds %s with %d", printableKey(k), s.Address, s.Amount))
			} else {
				stakeRanks[stakeRankKey(s)] = true
			}
		case strings.HasPrefix(k, pfxStakeRank):
			ranks[k] = true
		case strings.HasPrefix(k, pfxUnbonding):
			var u Unbonding
			if err := dec(&u); err != nil {
				return err
			}
			sum(&unbonding, u.Amount, "unbonding")
			if len(k) != len(pfxUnbonding)+8+len(u.Address) || k[len(pfxUnbonding)+8:] != string(u.Address[:]) || u.Amount == 0 {
				errs = append(errs, fmt.Errorf("unbonding record %q holds %s with %d", printableKey(k), u.Address, u.Amount))
			} else {
				unbondIdx[unbondByKey(u.Address, binary.BigEndian.Uint64([]byte(k[len(pfxUnbonding):])))] = true
			}
		case strings.HasPrefix(k, pfxUnbondBy):
			unbondBy[k] = true
		case strings.HasPrefix(k, pfxProvider):
			var p Provider
			if err := dec(&p); err != nil {
				return err
			}
			sum(&collateral, p.Collateral, "collateral")
			reserved[k[len(pfxProvider):]] = p.Reserved
			open[k[len(pfxProvider):]] = p.Open
			provHeld[k[len(pfxProvider):]] = [2]uint64{p.HeldJobs, p.HeldEarnings}
		case strings.HasPrefix(k, pfxMatch):
			var m Match
			if err := dec(&m); err != nil {
				return err
			}
			if unsettled(m.Status) {
				sum(&escrow, m.Escrow, "escrow")
				openIDs[m.Match.ID()] = dueAt(&m)
			}
			if c := m.Pending(); c != nil {
				sum(&deposits, c.Deposit, "deposits")
			}
			for i, c := range m.Challenges {
				if c.Outcome == ChallengePending && (i != len(m.Challenges)-1 || m.Status != MatchChallenged) {
					errs = append(errs, fmt.Errorf("match %x (%s) has challenge %d pending", k[len(pfxMatch):], m.Status, i))
				}
			}
			if m.Status == MatchHeld || m.Status == MatchChallenged {
				prov := m.Match.Offer.ProviderAddress()
				pk := string(prov[:])
				heldJobs[pk]++
				heldPay[pk] += m.HeldPay
				if m.HeldPay > m.Escrow {
					errs = append(errs, fmt.Errorf("match %x holds %d of an escrow of %d", k[len(pfxMatch):], m.HeldPay, m.Escrow))
				}
			}
			if m.Match.Bid.Replicas > 1 {
				replicas[m.Match.ID()] = m.Match.Bid.GroupID()
				if m.Awaiting {
					awaiting[m.Match.ID()] = true
				}
			} else if m.Awaiting {
				errs = append(errs, fmt.Errorf("match %x of one replica awaits a group", k[len(pfxMatch):]))
			}
			if m.Awaiting && m.Status != MatchHeld && m.Status != MatchChallenged {
				errs = append(errs, fmt.Errorf("match %x is %s yet awaits its group", k[len(pfxMatch):], m.Status))
			}
			if m.Status == MatchOpen {
				openMatches = append(openMatches, m)
			} else if !unsettled(m.Status) && m.Escrow != 0 {
				errs = append(errs, fmt.Errorf("settled match %x still holds escrow %d", k[len(pfxMatch):], m.Escrow))
			}
		case strings.HasPrefix(k, pfxGroup):
			var gr Group
			if err := dec(&gr); err != nil {
				return err
			}
			groups[[32]byte([]byte(k[len(pfxGroup):]))] = gr
		case strings.HasPrefix(k, pfxDeadline):
			if len(k) != len(pfxDeadline)+8+32 {
				errs = append(errs, fmt.Errorf("deadline key %q malformed", printableKey(k)))
				return nil
			}
			var id [32]byte
			copy(id[:], k[len(pfxDeadline)+8:])
			indexed[id] = int64(binary.BigEndian.Uint64([]byte(k[len(pfxDeadline):])))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range openMatches {
		prov := m.Match.Offer.ProviderAddress()
		pk := string(prov[:])
		r, err := reserved[pk].Sub(m.Match.Bid.Resources)
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s reserves less than its open matches: %v", prov, err))
			continue
		}
		r.GPUModel = ""
		reserved[pk] = r
		open[pk]--
	}
	errs = append(errs, groupInvariants(groups, replicas, awaiting)...)
	svcEscrow, svcErrs := serviceInvariants(st, reserved, open)
	errs = append(errs, svcErrs...)
	sum(&escrow, svcEscrow, "escrow")
	total := balances
	for _, v := range []uint64{bonded, unbonding, escrow, collateral, deposits, g.Burned} {
		sum(&total, v, "total")
	}
	if total != g.Supply {
		errs = append(errs, fmt.Errorf("supply not conserved: balances %d + bonded %d + unbonding %d + escrow %d + collateral %d + deposits %d + burned %d = %d, supply %d",
			balances, bonded, unbonding, escrow, collateral, deposits, g.Burned, total, g.Supply))
	}
	for pk, h := range provHeld {
		if h[0] != heldJobs[pk] || h[1] != min(heldPay[pk], MaxTrackValue) {
			errs = append(errs, fmt.Errorf("provider %x says %d results hold %d, its matches say %d hold %d", pk, h[0], h[1], heldJobs[pk], heldPay[pk]))
		}
		delete(heldJobs, pk)
	}
	for pk, n := range heldJobs {
		errs = append(errs, fmt.Errorf("%d held results of %x, which has no provider record", n, pk))
	}
	for _, c := range []struct {
		name       string
		have, want uint64
	}{{"bonded", g.Bonded, bonded}, {"unbonding", g.Unbonding, unbonding}, {"escrow", g.Escrow, escrow}, {"collateral", g.Collateral, collateral}, {"deposits", g.Deposits, deposits}} {
		if c.have != c.want {
			errs = append(errs, fmt.Errorf("globals %s %d, records sum to %d", c.name, c.have, c.want))
		}
	}
	for p, r := range reserved {
		if !r.IsZero() {
			errs = append(errs, fmt.Errorf("provider %x reserves %v beyond its open matches", p, r))
		}
		if open[p] != 0 {
			errs = append(errs, fmt.Errorf("provider %x open-match count off by %d", p, int64(open[p])))
		}
	}
	for id, dl := range openIDs {
		if at, ok := indexed[id]; !ok || at != max(dl, 0) {
			errs = append(errs, fmt.Errorf("unsettled match %x missing from the due index at %d", id[:8], dl))
		}
	}
	if !maps.Equal(stakeRanks, ranks) {
		errs = append(errs, fmt.Errorf("stake rank index (%d entries) does not match the %d stake records", len(ranks), len(stakeRanks)))
	}
	if !maps.Equal(unbondIdx, unbondBy) {
		errs = append(errs, fmt.Errorf("unbonding index (%d entries) does not match the %d unbonding records", len(unbondBy), len(unbondIdx)))
	}
	if len(indexed) != len(openIDs) {
		errs = append(errs, fmt.Errorf("due index holds %d jobs, %d matches unsettled", len(indexed), len(openIDs)))
	}
	return errors.Join(errs...)
}

// groupInvariants: every replica match is a member of its group and
// every member a replica match of it; a group holds at most Replicas
// members on distinct providers; a decided group has no member awaiting
// it, and the replicas awaiting one belong to a group not yet decided.
func groupInvariants(groups map[[32]byte]Group, replicas map[[32]byte][32]byte, awaiting map[[32]byte]bool) []error {
	var errs []error
	members := 0
	for id, g := range groups {
		if len(g.Members) == 0 || len(g.Members) > int(g.Replicas) {
			errs = append(errs, fmt.Errorf("group %x has %d members of %d replicas", id[:8], len(g.Members), g.Replicas))
		}
		provs := map[wallet.Address]bool{}
		for _, mb := range g.Members {
			members++
			if provs[mb.Provider] {
				errs = append(errs, fmt.Errorf("group %x holds provider %s twice", id[:8], mb.Provider))
			}
			provs[mb.Provider] = true
			if gid, ok := replicas[mb.JobID]; !ok || gid != id {
				errs = append(errs, fmt.Errorf("group %x lists %x, which is not its replica match", id[:8], mb.JobID[:8]))
			}
			if awaiting[mb.JobID] && g.Decided() {
				errs = append(errs, fmt.Errorf("replica %x awaits group %x, which is %s", mb.JobID[:8], id[:8], g.Outcome))
			}
		}
	}
	if members != len(replicas) {
		errs = append(errs, fmt.Errorf("%d replica matches, groups list %d", len(replicas), members))
	}
	return errs
}
