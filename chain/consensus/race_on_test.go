//go:build race

package consensus

// raceBuild is true under -race, where the simulation runs fewer seeds by
// default (ed25519 is ~20x slower there).
const raceBuild = true
