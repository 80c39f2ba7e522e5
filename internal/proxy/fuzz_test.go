package proxy

import (
	"bytes"
	"testing"
)

func FuzzStartupPacket(f *testing.F) {
	f.Add(packet(3<<16, []byte("user\x00ann\x00database\x00shop\x00\x00")))
	f.Add(packet(3<<16|2, []byte("user\x00ann\x00_pq_.x\x00y\x00\x00")))
	f.Add(packet(codeCancel, []byte{0, 0, 0, 1, 1, 2, 3, 4}))
	f.Add(packet(codeSSL, nil))
	f.Add(packet(3<<16, []byte("user\x00ann\x00user\x00bob\x00\x00")))
	f.Add([]byte{0, 0, 0, 4})

	f.Fuzz(func(t *testing.T, b []byte) {
		code, body, err := readStartupPacket(bytes.NewReader(b))
		if err != nil {
			return
		}

		switch code {
		case codeCancel:
			_, _, _ = parseCancel(body)
		default:
			st, err := parseStartup(code, body)
			if err == nil {
				_ = st.get("user")
				_ = parseRoute(st.get("database"))
			}
		}
	})
}

func FuzzAuthMessages(f *testing.F) {
	f.Add([]byte("p\x00\x00\x00\x2bSCRAM-SHA-256\x00\x00\x00\x00\x14n,,n=,r=abcdefghijkl"))
	f.Add([]byte("p\x00\x00\x00\x09abcde"))
	f.Add([]byte("p\xff\xff\xff\xff"))

	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := readMessage(bytes.NewReader(b), maxAuthMessageLen)
		if err != nil || typ != 'p' {
			return
		}

		_, _, _ = parseSASLInitial(body)
	})
}
