//go:build linux

package netns

import (
	"encoding/binary"
	"testing"
)

// FuzzPacketIDs: whatever a netlink datagram holds, packetIDs neither
// panics nor reads past it, and finds the id of a well-formed packet
// message.
func FuzzPacketIDs(f *testing.F) {
	f.Add(packetMsg(7))
	f.Add(append(packetMsg(1), packetMsg(2)...))
	f.Add([]byte{})
	f.Add(make([]byte, nlHdrLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids := packetIDs(b)
		if len(ids) > len(b)/(nlHdrLen+nfGenLen+8) {
			t.Fatalf("%d ids from %d bytes", len(ids), len(b))
		}
	})
}

func TestPacketIDsReadsEachPacketMessage(t *testing.T) {
	b := append(append(packetMsg(1), nfqMsg(nfqnlMsgConfig, 0, 9, nlAttr(nfqaPacketHdr, []byte{0, 0, 0, 5}))...), packetMsg(0xdeadbeef)...)
	ids := packetIDs(b)
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 0xdeadbeef {
		t.Fatalf("ids %x", ids)
	}
	// A truncated datagram yields what is whole and stops.
	if ids := packetIDs(b[:len(b)-3]); len(ids) != 1 {
		t.Fatalf("truncated: ids %x", ids)
	}
}

// packetMsg is what the kernel sends for a queued packet: a packet header
// attribute (id, hw protocol, hook) and a mark attribute.
func packetMsg(id uint32) []byte {
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = append(hdr, 0x08, 0x00, 1)
	m := nfqMsg(nfqnlMsgPacket, 0, 0, append(nlAttr(3, []byte{0, 0, 0, 1}), nlAttr(nfqaPacketHdr, hdr)...))
	return m
}
