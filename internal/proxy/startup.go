package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Request codes of startup packets that are not a StartupMessage
// (https://www.postgresql.org/docs/current/protocol-message-formats.html).
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSENC = 80877104
)

// maxStartupLen is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const maxStartupLen = 10000

// maxAuthMessageLen bounds messages read during authentication.
const maxAuthMessageLen = 8192

// errProtocol marks malformed input from a client.
var errProtocol = errors.New("protocol violation")

// readStartupPacket reads one length-prefixed startup packet (no type
// byte) and returns its code and body (after the code).
func readStartupPacket(r io.Reader) (code uint32, body []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}

	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > maxStartupLen {
		return 0, nil, fmt.Errorf("%w: startup packet length %d", errProtocol, n)
	}

	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("read startup packet: %w", err)
	}

	return binary.BigEndian.Uint32(buf[:4]), buf[4:], nil
}

// startup is a parsed StartupMessage.
type startup struct {
	major, minor uint16

	// params holds the parameters in the order the client sent them.
	params []param
}

type param struct{ name, value string }

// get returns the value of the named parameter.
func (s startup) get(name string) string {
	for _, p := range s.params {
		if p.name == name {
			return p.value
		}
	}

	return ""
}

// parseStartup parses the body of a StartupMessage: the protocol version
// is in code, the body holds name/value pairs of NUL-terminated strings
// ending with an empty name.
func parseStartup(code uint32, body []byte) (startup, error) {
	s := startup{major: uint16(code >> 16), minor: uint16(code)}
	if s.major != 3 {
		return s, fmt.Errorf("%w: unsupported frontend protocol %d.%d", errProtocol, s.major, s.minor)
	}

	seen := map[string]bool{}
	for {
		name, rest, ok := cutString(body)
		if !ok {
			return s, fmt.Errorf("%w: startup packet is not terminated", errProtocol)
		}

		if name == "" {
			if len(rest) != 0 {
				return s, fmt.Errorf("%w: data after the end of the startup packet", errProtocol)
			}

			return s, nil
		}

		value, rest, ok := cutString(rest)
		if !ok {
			return s, fmt.Errorf("%w: startup parameter %q has no value", errProtocol, name)
		}

		if seen[name] {
			return s, fmt.Errorf("%w: startup parameter %q given twice", errProtocol, name)
		}

		seen[name] = true
		s.params = append(s.params, param{name, value})
		body = rest
	}
}

// cutString splits a NUL-terminated string off b.
func cutString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}

	return string(b[:i]), b[i+1:], true
}

// readMessage reads one typed protocol message with a body of at most max
// bytes.
func readMessage(r io.Reader, max int) (typ byte, body []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}

	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n-4 > max {
		return 0, nil, fmt.Errorf("%w: message %q of length %d", errProtocol, hdr[0], n)
	}

	body = make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read message %q: %w", hdr[0], err)
	}

	return hdr[0], body, nil
}

// parseCancel parses the body of a CancelRequest: process id and secret
// key (4 bytes in protocol 3.0, up to 256 in 3.2).
func parseCancel(body []byte) (pid uint32, key []byte, err error) {
	if len(body) < 8 || len(body) > 4+256 {
		return 0, nil, fmt.Errorf("%w: cancel request of %d bytes", errProtocol, len(body))
	}

	return binary.BigEndian.Uint32(body), bytes.Clone(body[4:]), nil
}

// parseSASLInitial parses a SASLInitialResponse body: mechanism name and
// the client's first message (length -1 means none).
func parseSASLInitial(body []byte) (mech string, data []byte, err error) {
	mech, rest, ok := cutString(body)
	if !ok || len(rest) < 4 {
		return "", nil, fmt.Errorf("%w: malformed SASLInitialResponse", errProtocol)
	}

	n := int32(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n < 0 || int(n) != len(rest) {
		return "", nil, fmt.Errorf("%w: SASLInitialResponse data length %d", errProtocol, n)
	}

	return mech, rest, nil
}
