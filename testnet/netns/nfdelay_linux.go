//go:build linux

package netns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A delayer is the substitute for netem's delay on kernels without
// sch_netem: an iptables rule in the host's namespace hands every packet
// the host receives on eth0 to an NFQUEUE, and this process gives the
// kernel its verdict (accept) only once the packet has waited its delay.
// The packets are the kernel's own, on the real veth; only the wait is in
// user space. Packets go on in the order they were queued: with jitter
// each waits d ± jitter but never overtakes an earlier one (netem
// reorders).
//
// Netem delays what a host sends; this delays what it receives: every
// round trip with the host grows by d either way. Holding outgoing
// packets would not do: they still count against the sending socket's
// TCP small queues limit, which then throttles the sender to a trickle
// (4 MiB took 15 s over a 20 ms delay; on arrival it takes well under a
// second).
//
// The protocol is nfnetlink_queue's (linux/netfilter/nfnetlink_queue.h):
// bind a queue, ask for metadata only, and answer each NFQNL_MSG_PACKET
// with an NFQNL_MSG_VERDICT naming its packet id.
type delayer struct {
	ns        string
	fd        int
	d, jitter time.Duration
	cancel    context.CancelFunc
	done      chan struct{}
}

const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfqaCfgFFailOpen   = 1 // accept, not drop, when the queue is full
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfAccept           = 1
	nlHdrLen           = 16
	nfGenLen           = 4
	delayQueue         = 0 // queue numbers are per namespace
	delayQueueLen      = 1 << 16
)

// delayRule is the iptables rule (mangle table) that queues what the host
// receives; --queue-bypass lets packets through when nobody listens.
func delayRule(op string) []string {
	return []string{"iptables", "-w", "-t", "mangle", op, "PREROUTING", "-i", "eth0",
		"-j", "NFQUEUE", "--queue-num", strconv.Itoa(delayQueue), "--queue-bypass"}
}

// startDelay binds the queue inside ns and installs the rule.
func startDelay(ctx context.Context, ns string, d, jitter time.Duration) (*delayer, error) {
	fd := -1
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("netns: delay in %s: %w", ns, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	// Reads wake up this often to see whether the delayer was stopped.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns: delay in %s: %w", ns, err)
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	steps := [][]byte{
		nlAttr(nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, unix.AF_INET}),
		nlAttr(nfqaCfgParams, append(be32(0), nfqnlCopyMeta)),
		nlAttr(nfqaCfgQueueMaxlen, be32(delayQueueLen)),
		append(nlAttr(nfqaCfgFlags, be32(nfqaCfgFFailOpen)), nlAttr(nfqaCfgMask, be32(nfqaCfgFFailOpen))...),
	}
	for i, a := range steps {
		if err := nfqRequest(fd, uint32(i+1), a); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("netns: delay in %s: configure the queue (step %d): %w", ns, i+1, err)
		}
	}
	if err := run(ctx, nil, "ip", append([]string{"netns", "exec", ns}, delayRule("-A")...)...); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns: delay in %s: %w", ns, err)
	}
	dctx, cancel := context.WithCancel(context.Background())
	dl := &delayer{ns: ns, fd: fd, d: d, jitter: jitter, cancel: cancel, done: make(chan struct{})}
	pending := make(chan held, delayQueueLen)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		dl.read(dctx, pending)
	}()
	go func() {
		defer close(dl.done)
		dl.release(dctx, pending)
		<-readDone
	}()
	return dl, nil
}

// held is a queued packet and when it may leave.
type held struct {
	id uint32
	at time.Time
}

// read turns the kernel's packet messages into held packets until ctx
// ends.
func (dl *delayer) read(ctx context.Context, out chan<- held) {
	buf := make([]byte, 1<<18)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(dl.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return
		}
		now := time.Now()
		for _, id := range packetIDs(buf[:n]) {
			wait := dl.d
			if dl.jitter > 0 {
				wait += time.Duration(rand.Int64N(int64(2*dl.jitter)+1)) - dl.jitter
			}
			select {
			case out <- held{id: id, at: now.Add(wait)}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// release accepts each held packet at its time, in order; once ctx ends
// it accepts what is left at once.
func (dl *delayer) release(ctx context.Context, in <-chan held) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var seq uint32 = 1 << 20
	for {
		var h held
		select {
		case h = <-in:
		case <-ctx.Done():
			for {
				select {
				case h := <-in:
					seq++
					dl.verdict(seq, h.id)
				default:
					return
				}
			}
		}
		if w := time.Until(h.at); w > 0 {
			t.Reset(w)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
		seq++
		dl.verdict(seq, h.id)
	}
}

func (dl *delayer) verdict(seq, id uint32) {
	v := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, nfAccept), id)
	msg := nfqMsg(nfqnlMsgVerdict, unix.NLM_F_REQUEST, seq, nlAttr(nfqaVerdictHdr, v))
	_ = unix.Sendto(dl.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// stop removes the rule (unless the namespace is going away anyway), lets
// every held packet go and closes the queue.
func (dl *delayer) stop(ctx context.Context, removeRule bool) error {
	var err error
	if removeRule {
		err = run(ctx, nil, "ip", append([]string{"netns", "exec", dl.ns}, delayRule("-D")...)...)
	}
	dl.cancel()
	<-dl.done
	unix.Close(dl.fd)
	return err
}

// nlAttr is one netlink attribute, padded to 4 bytes.
func nlAttr(typ uint16, payload []byte) []byte {
	n := 4 + len(payload)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], payload)
	return b
}

// nfqMsg is a nfnetlink_queue message for delayQueue carrying attrs.
func nfqMsg(typ, flags uint16, seq uint32, attrs []byte) []byte {
	b := make([]byte, nlHdrLen+nfGenLen, nlHdrLen+nfGenLen+len(attrs))
	b = append(b, attrs...)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b[nlHdrLen] = unix.AF_UNSPEC // nfgen family; version 0
	binary.BigEndian.PutUint16(b[nlHdrLen+2:], delayQueue)
	return b
}

// nfqRequest sends a config message and waits for its acknowledgement.
func nfqRequest(fd int, seq uint32, attrs []byte) error {
	msg := nfqMsg(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, attrs)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= nlHdrLen; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < nlHdrLen || l > len(b) {
				return errors.New("malformed netlink answer")
			}
			if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR && binary.NativeEndian.Uint32(b[8:]) == seq && l >= nlHdrLen+4 {
				if code := int32(binary.NativeEndian.Uint32(b[nlHdrLen:])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
	return errors.New("no acknowledgement from nfnetlink_queue")
}

// packetIDs returns the packet ids of the NFQNL_MSG_PACKET messages in a
// datagram from the kernel; anything else, or anything malformed, is
// skipped.
func packetIDs(b []byte) []uint32 {
	var ids []uint32
	for len(b) >= nlHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < nlHdrLen || l > len(b) {
			break
		}
		if binary.NativeEndian.Uint16(b[4:]) == nfnlSubsysQueue<<8|nfqnlMsgPacket && l >= nlHdrLen+nfGenLen {
			for a := b[nlHdrLen+nfGenLen : l]; len(a) >= 4; {
				al := int(binary.NativeEndian.Uint16(a[0:]))
				if al < 4 || al > len(a) {
					break
				}
				if binary.NativeEndian.Uint16(a[2:])&0x3fff == nfqaPacketHdr && al >= 8 {
					ids = append(ids, binary.BigEndian.Uint32(a[4:]))
					break
				}
				a = a[min((al+3)&^3, len(a)):]
			}
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return ids
}
