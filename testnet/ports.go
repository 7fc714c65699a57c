package testnet

import (
	"fmt"
	"net"
	"strconv"
)

// checkPorts probes every port the network will use on 127.0.0.1: the
// API's TCP port and the P2P port for TCP and UDP (QUIC).
func checkPorts(o Options) error {
	for i := range o.N {
		api := o.APIBasePort + i
		if err := portFree("tcp", api); err != nil {
			return fmt.Errorf("node%d's API port %d is in use (%v): choose other ports with --base-port", i, api, err)
		}
		p := o.P2PBasePort + i
		if err := portFree("tcp", p); err != nil {
			return fmt.Errorf("node%d's P2P port %d/tcp is in use (%v): choose other ports with --base-port", i, p, err)
		}
		if err := portFree("udp", p); err != nil {
			return fmt.Errorf("node%d's P2P port %d/udp is in use (%v): choose other ports with --base-port", i, p, err)
		}
	}
	return nil
}

func portFree(network string, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}
