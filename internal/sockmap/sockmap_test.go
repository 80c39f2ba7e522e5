package sockmap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// connPair returns both ends of a fresh connection on network.
func connPair(t *testing.T, network string) (dialed, accepted net.Conn) {
	t.Helper()

	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}

	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	dialed, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { dialed.Close(); accepted.Close() })

	return dialed, accepted
}

// proxied is a client talking over TCP to a proxy socket, paired in the
// kernel with the proxy's Unix socket to a server.
type proxied struct {
	client, server net.Conn
	session        *Session
	stats          chan Stats // Relay's result
}

// newProxied pairs a fresh client and server; before, if not nil, runs
// between Pair and Relay.
func newProxied(t *testing.T, r *Relay, before func(*Session)) proxied {
	t.Helper()

	client, proxyIn := connPair(t, "tcp")
	proxyOut, server := connPair(t, "unix")

	s, err := r.Pair(proxyIn, proxyOut)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}

	if before != nil {
		before(s)
	}

	p := proxied{client: client, server: server, session: s, stats: make(chan Stats, 1)}
	go func() { p.stats <- s.Relay(time.Second) }()

	return p
}

// wait returns the session's stats once Relay returned.
func (p proxied) wait(t *testing.T) Stats {
	t.Helper()

	select {
	case st := <-p.stats:
		return st
	case <-time.After(30 * time.Second):
		t.Fatal("Relay did not return")
		return Stats{}
	}
}

func newRelay(t *testing.T) *Relay {
	t.Helper()

	r, err := New(16)
	if err != nil {
		t.Fatalf("the kernel relay needs root on Linux 5.15+: %v", err)
	}

	t.Cleanup(func() { r.Close() })

	return r
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()

	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}

	return buf
}

// assertEOF checks that c's peer closed.
func assertEOF(t *testing.T, c net.Conn) {
	t.Helper()

	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, err %v; want end of stream", n, err)
	}
}

func TestRelayForwardsBothWaysWithoutTheProcess(t *testing.T) {
	p := newProxied(t, newRelay(t), nil)

	var up, down int64
	for i := range 50 {
		q := bytes.Repeat([]byte{byte('a' + i%26)}, 100+i)
		if _, err := p.client.Write(q); err != nil {
			t.Fatal(err)
		}

		if got := readN(t, p.server, len(q)); !bytes.Equal(got, q) {
			t.Fatalf("server got %q, want %q", got, q)
		}

		a := bytes.Repeat([]byte{byte('A' + i%26)}, 2000+i)
		if _, err := p.server.Write(a); err != nil {
			t.Fatal(err)
		}

		if got := readN(t, p.client, len(a)); !bytes.Equal(got, a) {
			t.Fatalf("client got %d bytes, want %d", len(got), len(a))
		}

		up, down = up+int64(len(q)), down+int64(len(a))
	}

	// The client hangs up: the session ends and the server sees it.
	p.client.Close()
	st := p.wait(t)
	assertEOF(t, p.server)

	// TCP counts the client's FIN as one byte received.
	if st.Passed != 0 || st.AToB != up+1 || st.BToA != down {
		t.Fatalf("stats %+v, want %d bytes up and %d down, none through the process", st, up, down)
	}
}

func TestRelayForwardsWhatTheKernelPassesUp(t *testing.T) {
	// Unpaired, every byte reaches the proxy's sockets: Relay forwards.
	p := newProxied(t, newRelay(t), func(s *Session) { s.Unpair() })

	if _, err := p.client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}

	if got := readN(t, p.server, 5); string(got) != "hello" {
		t.Fatalf("server got %q, want hello", got)
	}

	p.session.Stop()
	if st := p.wait(t); st.Passed != 5 {
		t.Fatalf("stats %+v, want 5 bytes through the process", st)
	}

	assertEOF(t, p.client)
	assertEOF(t, p.server)
}

func TestRelayDeliversTheServersLastBytes(t *testing.T) {
	p := newProxied(t, newRelay(t), nil)

	if _, err := p.server.Write([]byte("FATAL: bye")); err != nil {
		t.Fatal(err)
	}

	p.server.Close()

	if got := readN(t, p.client, 10); string(got) != "FATAL: bye" {
		t.Fatalf("client got %q", got)
	}

	assertEOF(t, p.client)
	p.wait(t)
}

func TestCloseEndsRelayedSessions(t *testing.T) {
	r := newRelay(t)
	p := newProxied(t, r, nil)

	// Wait until Relay has taken the sockets over.
	if _, err := p.client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}

	readN(t, p.server, 4)

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	p.wait(t)
	assertEOF(t, p.client)
	assertEOF(t, p.server)

	// A closed relay pairs nothing.
	c, _ := connPair(t, "tcp")
	u, _ := connPair(t, "unix")
	if _, err := r.Pair(c, u); err == nil {
		t.Fatal("Pair on a closed relay succeeded")
	}
}

func TestRelayBackpressureAndIntegrity(t *testing.T) {
	p := newProxied(t, newRelay(t), nil)

	// 64 MiB from the server to a client that does not read yet: the
	// server's writes must block rather than pile up in the kernel.
	const total = 64 << 20

	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}

	_ = p.server.SetWriteDeadline(time.Now().Add(time.Second))

	written := 0
	for written < total {
		n, err := p.server.Write(chunk)
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}

		if err != nil {
			t.Fatal(err)
		}
	}

	if written >= total {
		t.Fatalf("the server wrote all %d bytes to a client that read nothing: no backpressure", total)
	}

	// Now read everything, writing the rest concurrently, and compare.
	_ = p.server.SetWriteDeadline(time.Time{})
	want := sha256.New()
	for range total / len(chunk) {
		want.Write(chunk)
	}

	go func() {
		rest := total - written
		for rest > 0 {
			n, err := p.server.Write(chunk[(total-rest)%len(chunk) : min(len(chunk), (total-rest)%len(chunk)+rest)])
			if err != nil {
				return
			}

			rest -= n
		}
	}()

	got := sha256.New()
	_ = p.client.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.CopyN(got, p.client, total); err != nil {
		t.Fatalf("read after %d buffered bytes: %v", written, err)
	}

	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("relayed bytes differ from the bytes sent")
	}
}

func TestPairRefusesUnsupportedSockets(t *testing.T) {
	r := newRelay(t)
	tcp, _ := connPair(t, "tcp")

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()

	for name, c := range map[string]net.Conn{"udp": udp.(*net.UDPConn), "pipe": a} {
		if _, err := r.Pair(tcp, c); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: Pair error %v, want ErrUnsupported", name, err)
		}
	}

	// A failed Pair leaves nothing behind: the TCP socket pairs again.
	u, _ := connPair(t, "unix")
	if _, err := r.Pair(tcp, u); err != nil {
		t.Fatalf("pair after failures: %v", err)
	}
}

func TestPairRefusesSocketsWithUnreadBytes(t *testing.T) {
	r := newRelay(t)
	client, proxyIn := connPair(t, "tcp")
	proxyOut, server := connPair(t, "unix")

	if _, err := client.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}

	// Wait until the bytes are queued on the proxy's socket.
	got := make([]byte, 1)
	_ = proxyIn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := proxyIn.Read(got); err != nil {
		t.Fatal(err)
	}

	if _, err := r.Pair(proxyIn, proxyOut); !errors.Is(err, ErrQueued) {
		t.Fatalf("Pair with 4 unread bytes: %v, want ErrQueued", err)
	}

	if got := readN(t, proxyIn, 4); string(got) != "arly" {
		t.Fatalf("unread bytes %q, want arly", got)
	}

	// Emptied, the sockets pair and relay.
	if _, err := r.Pair(proxyIn, proxyOut); err != nil {
		t.Fatal(err)
	}

	if _, err := client.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}

	if got := readN(t, server, 4); string(got) != "late" {
		t.Fatalf("server got %q, want late", got)
	}
}

func FuzzParseDiag(f *testing.F) {
	f.Add(append(diagRequest(7), 8, 0, 2, 0, 1, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseDiag(b)
	})
}
