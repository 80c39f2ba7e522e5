package sockmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// sock_diag constants for Unix sockets (linux/unix_diag.h,
// linux/sock_diag.h).
const (
	sockDiagByFamily = 20
	udiagShowPeer    = 0x4
	unixDiagPeer     = 2

	nlmsgHdrLen   = 16
	unixReqLen    = 24
	unixMsgHdrLen = 16
)

// peerCookie returns the socket cookie of the peer of the Unix stream
// socket fd. The peer must have been accepted: a connection still in the
// listen queue has no inode to look it up by.
func peerCookie(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat socket: %w", err)
	}

	_, peer, err := unixDiag(uint32(st.Ino))
	if err != nil {
		return 0, err
	}

	if peer == 0 {
		return 0, errors.New("unix socket has no accepted peer")
	}

	cookie, _, err := unixDiag(peer)

	return cookie, err
}

// unixDiag asks sock_diag about the Unix socket with inode ino and
// returns its cookie and its peer's inode (0 if none).
func unixDiag(ino uint32) (cookie uint64, peer uint32, err error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, fmt.Errorf("open sock_diag: %w", err)
	}
	defer unix.Close(s)

	if err := unix.Sendto(s, diagRequest(ino), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, fmt.Errorf("sock_diag request: %w", err)
	}

	buf := make([]byte, 4096)

	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("sock_diag reply: %w", err)
	}

	return parseDiag(buf[:n])
}

// diagRequest builds a SOCK_DIAG_BY_FAMILY request for one Unix socket.
func diagRequest(ino uint32) []byte {
	req := make([]byte, nlmsgHdrLen+unixReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)

	body := req[nlmsgHdrLen:]
	body[0] = unix.AF_UNIX
	ne.PutUint32(body[4:], ^uint32(0)) // all states
	ne.PutUint32(body[8:], ino)
	ne.PutUint32(body[12:], udiagShowPeer)
	ne.PutUint32(body[16:], ^uint32(0)) // no cookie check
	ne.PutUint32(body[20:], ^uint32(0))

	return req
}

// parseDiag reads a unix_diag_msg reply: the cookie, and the peer inode
// from the UNIX_DIAG_PEER attribute.
func parseDiag(b []byte) (cookie uint64, peer uint32, err error) {
	ne := binary.NativeEndian
	if len(b) < nlmsgHdrLen+4 {
		return 0, 0, errors.New("sock_diag reply too short")
	}

	if ne.Uint16(b[4:]) == unix.NLMSG_ERROR {
		return 0, 0, fmt.Errorf("sock_diag: %w", syscall.Errno(-int32(ne.Uint32(b[nlmsgHdrLen:]))))
	}

	size := int(ne.Uint32(b[0:]))
	if size > len(b) || size < nlmsgHdrLen+unixMsgHdrLen {
		return 0, 0, errors.New("sock_diag reply truncated")
	}

	msg := b[nlmsgHdrLen:size]
	cookie = uint64(ne.Uint32(msg[8:])) | uint64(ne.Uint32(msg[12:]))<<32

	for attrs := msg[unixMsgHdrLen:]; len(attrs) >= 4; {
		l, t := int(ne.Uint16(attrs[0:])), ne.Uint16(attrs[2:])
		if l < 4 || l > len(attrs) {
			return 0, 0, errors.New("sock_diag attribute truncated")
		}

		if t == unixDiagPeer && l >= 8 {
			peer = ne.Uint32(attrs[4:])
		}

		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}

	return cookie, peer, nil
}
