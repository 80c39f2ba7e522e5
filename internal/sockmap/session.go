package sockmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Session is a pair of sockets the kernel relays between.
type Session struct {
	r     *Relay
	conns [2]net.Conn // until Relay takes them over
	keys  [2]uint64
	fds   [2]int       // Relay's own descriptors, -1 before
	start unix.TCPInfo // counters of the first socket when paired

	ev       chan struct{} // the watcher saw a hang-up
	stop     chan struct{}
	stopOnce sync.Once
}

// Stats tell how many bytes a session moved since Pair, counted from the
// TCP counters of its first socket (zero when that is not TCP).
type Stats struct {
	// AToB and BToA are the bytes that arrived on a, and that went out
	// of a, while the session was relayed. TCP counts a FIN from a's peer
	// as one byte in AToB.
	AToB, BToA int64

	// Passed is what the process forwarded itself: bytes that arrived
	// before the pairing took effect or while it was being torn down.
	Passed int64
}

// Stop ends Relay, which closes the sockets. It may be called at any
// time, more than once.
func (s *Session) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
}

// Relay takes the sockets over and waits for the session to end: when a
// hangs up, when Stop is called, or grace after b hung up (so that b's
// last bytes, still on their way through the kernel, reach a). It then
// closes both sockets.
func (s *Session) Relay(grace time.Duration) Stats {
	if err := s.detach(); err != nil {
		s.close()
		_ = s.conns[0].Close()
		_ = s.conns[1].Close()

		return Stats{}
	}
	defer s.close()

	passed := s.loop(grace)

	after := tcpInfoFD(s.fds[0])

	return Stats{
		AToB:   int64(after.Bytes_received - s.start.Bytes_received),
		BToA:   int64(after.Bytes_acked - s.start.Bytes_acked),
		Passed: passed,
	}
}

// loop forwards what the kernel passed up until the session ends.
func (s *Session) loop(grace time.Duration) (passed int64) {
	var ended [2]bool
	var deadline <-chan time.Time

	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()

	buf := make([]byte, 16<<10)
	for {
		select {
		case <-s.ev:
		case <-sweep.C:
		case <-s.stop:
			return passed
		case <-deadline:
			return passed
		}

		for i := range 2 {
			if ended[i] {
				continue
			}

			n, eof := s.forward(buf, i, 1-i)
			passed += n

			if eof {
				ended[i] = true
			} else if err := s.rearm(i); err != nil {
				return passed
			}
		}

		switch {
		case ended[0]:
			return passed
		case ended[1] && deadline == nil:
			deadline = time.After(grace)
		}
	}
}

// forward moves the bytes queued on socket from to socket to. It reports
// end of stream (or an error) on from.
func (s *Session) forward(buf []byte, from, to int) (moved int64, eof bool) {
	for {
		n, err := unix.Read(s.fds[from], buf)
		switch {
		case n > 0:
			if werr := s.writeAll(s.fds[to], buf[:n]); werr != nil {
				return moved, true
			}

			moved += int64(n)
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return moved, false
		default: // 0 bytes: end of stream; or an error
			return moved, true
		}
	}
}

// writeAll writes b to the non-blocking descriptor fd, waiting while its
// buffer is full.
func (s *Session) writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if n > 0 {
			b = b[n:]
		}

		switch {
		case err == nil, errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			select {
			case <-s.stop:
				return errors.New("sockmap: session stopped")
			default:
			}

			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 100)
		default:
			return err
		}
	}

	return nil
}

// detach moves the sockets out of the Go runtime's poller onto
// descriptors of the session's own, watched for hang-ups only.
func (s *Session) detach() error {
	for i, c := range s.conns {
		err := withFD(c, func(fd int) error {
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			s.fds[i] = d

			return err
		})
		if err != nil {
			return fmt.Errorf("sockmap: duplicate socket: %w", err)
		}
	}

	// The duplicates keep the sockets open; closing the originals
	// removes them from the runtime's poller without a FIN.
	_ = s.conns[0].Close()
	_ = s.conns[1].Close()

	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.closed {
		return errors.New("sockmap: relay closed")
	}

	for _, fd := range s.fds {
		r.sessions[int32(fd)] = s
		if err := r.arm(unix.EPOLL_CTL_ADD, fd); err != nil {
			return err
		}
	}

	return nil
}

// rearm asks the watcher for the next report on socket i.
func (s *Session) rearm(i int) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()

	if s.r.closed {
		return errors.New("sockmap: relay closed")
	}

	return s.r.arm(unix.EPOLL_CTL_MOD, s.fds[i])
}

// close unpairs and closes the session's sockets.
func (s *Session) close() {
	r := s.r
	r.mu.Lock()
	s.unpairLocked()

	for _, fd := range s.fds {
		if fd >= 0 && !r.closed {
			delete(r.sessions, int32(fd))
			_ = unix.EpollCtl(r.ep, unix.EPOLL_CTL_DEL, fd, nil)
		}
	}
	r.mu.Unlock()

	for i, fd := range s.fds {
		if fd >= 0 {
			_ = unix.Close(fd)
			s.fds[i] = -1
		}
	}
}

// notify tells the session's loop to look at its sockets.
func (s *Session) notify() {
	select {
	case s.ev <- struct{}{}:
	default:
	}
}

// sweepInterval is how often a session looks for bytes the kernel passed
// up to its sockets instead of forwarding them (rare: they arrived while
// the pairing was being set up or torn down).
const sweepInterval = time.Second

// arm (re)registers fd for one report of a hang-up. Not for input: the
// kernel reports every message that arrives on a paired socket as
// input, even those it forwards, and each report would wake the watcher.
func (r *Relay) arm(op, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(r.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("sockmap: watch socket: %w", err)
	}

	return nil
}

// startWatcher creates the epoll set and the goroutine that waits on it.
func (r *Relay) startWatcher() error {
	var err error
	if r.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("sockmap: epoll: %w", err)
	}

	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		_ = unix.Close(r.ep)
		return fmt.Errorf("sockmap: eventfd: %w", err)
	}

	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.wake)}
	if err := unix.EpollCtl(r.ep, unix.EPOLL_CTL_ADD, r.wake, &ev); err != nil {
		_ = unix.Close(r.wake)
		_ = unix.Close(r.ep)

		return fmt.Errorf("sockmap: epoll: %w", err)
	}

	go r.watch()

	return nil
}

// watch passes epoll reports to their sessions until stopWatcher. It
// holds one thread, blocked in epoll_wait, for all sessions.
func (r *Relay) watch() {
	defer close(r.done)

	evs := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(r.ep, evs, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}

		for _, ev := range evs[:max(n, 0)] {
			if ev.Fd == int32(r.wake) {
				return
			}

			r.mu.Lock()
			s := r.sessions[ev.Fd]
			r.mu.Unlock()

			if s != nil {
				s.notify()
			}
		}
	}
}

// stopWatcher ends watch and closes the epoll set. r.mu is held.
func (r *Relay) stopWatcher() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(r.wake, one[:]); err != nil {
		return fmt.Errorf("sockmap: wake watcher: %w", err)
	}

	r.mu.Unlock()
	<-r.done
	r.mu.Lock()

	return errors.Join(unix.Close(r.wake), unix.Close(r.ep))
}

// tcpInfo returns the TCP counters of c (zero when c is not TCP).
func tcpInfo(c net.Conn) unix.TCPInfo {
	var info unix.TCPInfo
	_ = withFD(c, func(fd int) error {
		info = tcpInfoFD(fd)
		return nil
	})

	return info
}

func tcpInfoFD(fd int) unix.TCPInfo {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return unix.TCPInfo{}
	}

	return *info
}
