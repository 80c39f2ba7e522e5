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
	client, proxyIn, proxyOut, server net.Conn
	pairing                           *Pairing
}

func newProxied(t *testing.T, r *Relay) proxied {
	t.Helper()

	client, proxyIn := connPair(t, "tcp")
	proxyOut, server := connPair(t, "unix")

	p, err := r.Pair(proxyIn, proxyOut)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}

	return proxied{client: client, proxyIn: proxyIn, proxyOut: proxyOut, server: server, pairing: p}
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

// assertNothing checks that no byte reached c (the proxy process's view).
func assertNothing(t *testing.T, c net.Conn) {
	t.Helper()

	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("proxy socket read %d bytes, err %v; want nothing", n, err)
	}
}

func TestRelayForwardsBothWaysWithoutTheProcess(t *testing.T) {
	p := newProxied(t, newRelay(t))

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
	}

	assertNothing(t, p.proxyIn)
	assertNothing(t, p.proxyOut)
}

func TestRelayBackpressureAndIntegrity(t *testing.T) {
	p := newProxied(t, newRelay(t))

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

func TestUnpairLeavesDataOnTheSocket(t *testing.T) {
	p := newProxied(t, newRelay(t))
	p.pairing.Unpair()

	if _, err := p.client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}

	if got := readN(t, p.proxyIn, 5); string(got) != "hello" {
		t.Fatalf("proxy socket got %q after unpair, want hello", got)
	}

	assertNothing(t, p.server)
}

func TestCloseOfOneSideIsSeenByTheProcess(t *testing.T) {
	p := newProxied(t, newRelay(t))

	p.client.Close()

	_ = p.proxyIn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := p.proxyIn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the client closed, proxy read %d bytes, err %v; want EOF", n, err)
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
