package netns

// Host is one namespace of a Net.
type Host struct {
	Index int
	NS    string // namespace name
	// Addr is the host's address on the bridge: where the others see its
	// packets come from (its NAT router's address when it is behind one).
	Addr string
	// Inner is the address of the host's own interface: Addr, or a private
	// address behind its NAT router.
	Inner string
	// Router is the namespace of its NAT router, or "".
	Router string
}
