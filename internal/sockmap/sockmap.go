// Package sockmap relays bytes between pairs of connected sockets inside
// the kernel, so that a proxy stays out of the data path once a session
// is set up.
//
// A Relay owns a BPF sockhash and an sk_skb verdict program attached to
// it. Pairing sockets a and b stores b under the key of a and a under the
// key of b. When data arrives on a socket of the map, the program looks up
// the key of the socket the data arrived on and redirects the data to the
// egress of the other socket; the proxy process neither wakes up nor
// copies. If the lookup fails (the pair is being torn down), the program
// passes the data to the socket's own receive queue, where the process
// reads it as usual: nothing is dropped.
//
// The key of a socket is the socket cookie that bpf_get_socket_cookie
// reports for data arriving on it. For TCP that is the receiving socket's
// own cookie (SO_COOKIE); for Unix stream sockets the kernel accounts
// arriving data to the sending socket, so the key is the peer's cookie,
// which sock_diag tells.
//
// Needs Linux 5.15 or later (Unix sockets in sockmaps) and CAP_BPF with
// CAP_NET_ADMIN, or root.
package sockmap

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned by Pair for sockets the kernel cannot
// relay: anything but TCP and Unix stream sockets, or a TLS connection.
var ErrUnsupported = errors.New("sockmap: unsupported socket")

// ErrQueued is returned by Pair when a socket already holds unread
// bytes: the caller must forward those first, and bytes the kernel
// forwarded meanwhile could overtake them.
var ErrQueued = errors.New("sockmap: socket has unread bytes")

// skPass is the verdict that keeps data on the socket it arrived on.
const skPass = 1

// Relay pairs sockets so the kernel forwards between them.
type Relay struct {
	m    *ebpf.Map
	prog *ebpf.Program

	// ep is an epoll set watching relayed sockets for hang-ups only. The
	// Go runtime's poller would wake up for every message: the kernel
	// reports each message arriving on a paired socket as input, even one
	// it forwards. wake ends the watcher.
	ep, wake int
	done     chan struct{}

	mu       sync.Mutex
	closed   bool
	sessions map[int32]*Session // by watched descriptor
}

// New loads the verdict program and a map for up to maxPairs pairs.
func New(maxPairs int) (*Relay, error) {
	if maxPairs < 1 {
		return nil, fmt.Errorf("sockmap: maxPairs %d: must be at least 1", maxPairs)
	}

	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "pgtide_pairs",
		Type:       ebpf.SockHash,
		KeySize:    8,
		ValueSize:  8,
		MaxEntries: uint32(2 * maxPairs),
	})
	if err != nil {
		return nil, fmt.Errorf("sockmap: create sockhash (needs CAP_BPF and CAP_NET_ADMIN): %w", err)
	}

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "pgtide_redirect",
		Type:         ebpf.SkSKB,
		License:      "Dual BSD/GPL",
		Instructions: verdict(m),
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("sockmap: load verdict program: %w", err)
	}

	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: m.FD(), Program: prog, Attach: ebpf.AttachSkSKBVerdict})
	if err != nil {
		prog.Close()
		m.Close()
		return nil, fmt.Errorf("sockmap: attach verdict program (needs Linux 5.15+): %w", err)
	}

	r := &Relay{m: m, prog: prog, done: make(chan struct{}), sessions: map[int32]*Session{}}
	if err := r.startWatcher(); err != nil {
		_ = r.unload()
		return nil, err
	}

	return r, nil
}

// unload detaches the program and frees it and the map.
func (r *Relay) unload() error {
	err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: r.m.FD(), Program: r.prog, Attach: ebpf.AttachSkSKBVerdict})

	return errors.Join(err, r.prog.Close(), r.m.Close())
}

// verdict is the sk_skb program: redirect to the socket stored under the
// arriving data's socket cookie, or pass the data up when there is none.
func verdict(m *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // keep the skb
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, m.FD()),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 0), // egress of the found socket
		asm.FnSkRedirectHash.Call(),
		asm.JEq.Imm(asm.R0, skPass, "out"),
		asm.Mov.Imm(asm.R0, skPass), // no pair: deliver locally
		asm.Return().WithSymbol("out"),
	}
}

// Close stops the sessions still relayed, detaches the program and frees
// the map.
func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.closed {
		return nil
	}

	r.closed = true
	for _, s := range r.sessions {
		s.Stop()
	}

	return errors.Join(r.stopWatcher(), r.unload())
}

// Pair makes the kernel forward what arrives on a to b and what arrives
// on b to a. It refuses sockets with unread bytes ([ErrQueued]); bytes
// that arrive while it runs stay on their socket, and [Session.Relay]
// forwards them. The caller may still write to a and b until it calls
// Relay, which takes them over. On error nothing is left paired.
func (r *Relay) Pair(a, b net.Conn) (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.closed {
		return nil, errors.New("sockmap: relay closed")
	}

	ka, err := keyOf(a)
	if err != nil {
		return nil, err
	}

	kb, err := keyOf(b)
	if err != nil {
		return nil, err
	}

	for _, c := range []net.Conn{a, b} {
		if err := checkEmpty(c); err != nil {
			return nil, err
		}
	}

	s := &Session{r: r, conns: [2]net.Conn{a, b}, fds: [2]int{-1, -1}, start: tcpInfo(a),
		ev: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := r.put(ka, b); err != nil {
		return nil, err
	}

	s.keys[0] = ka

	if err := r.put(kb, a); err != nil {
		s.unpairLocked()
		return nil, err
	}

	s.keys[1] = kb

	return s, nil
}

// Unpair removes a session that will not be relayed from the map. The
// caller closes its sockets.
func (s *Session) Unpair() {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()

	s.unpairLocked()
}

func (s *Session) unpairLocked() {
	if s.r.closed {
		return
	}

	for i, k := range s.keys {
		if k != 0 {
			_ = s.r.m.Delete(k)
			s.keys[i] = 0
		}
	}
}

// put stores the socket of c under key.
func (r *Relay) put(key uint64, c net.Conn) error {
	return withFD(c, func(fd int) error {
		if err := r.m.Update(key, uint64(fd), ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("sockmap: add socket: %w", err)
		}

		return nil
	})
}

// keyOf returns the cookie the verdict program sees for data arriving on
// c.
func keyOf(c net.Conn) (uint64, error) {
	var key uint64

	err := withFD(c, func(fd int) error {
		if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_STREAM {
			return ErrUnsupported
		}

		domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return fmt.Errorf("sockmap: socket domain: %w", err)
		}

		switch domain {
		case unix.AF_INET, unix.AF_INET6:
			key, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
		case unix.AF_UNIX:
			key, err = peerCookie(fd)
		default:
			return ErrUnsupported
		}

		if err != nil {
			return fmt.Errorf("sockmap: socket cookie: %w", err)
		}

		return nil
	})

	return key, err
}

// checkEmpty returns ErrQueued when c's receive queue holds bytes.
func checkEmpty(c net.Conn) error {
	return withFD(c, func(fd int) error {
		n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err != nil {
			return fmt.Errorf("sockmap: queued bytes: %w", err)
		}

		if n > 0 {
			return ErrQueued
		}

		return nil
	})
}

// withFD runs f with the file descriptor of c, which stays open meanwhile.
func withFD(c net.Conn, f func(fd int) error) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ErrUnsupported
	}

	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("sockmap: %w", err)
	}

	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fmt.Errorf("sockmap: %w", err)
	}

	return ferr
}
