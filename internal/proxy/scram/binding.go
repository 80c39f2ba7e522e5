package scram

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"fmt"
	"hash"
)

// BindingType is the only channel binding type the server accepts:
// tls-server-end-point (RFC 5929, section 4), the one PostgreSQL uses.
const BindingType = "tls-server-end-point"

// TLSServerEndPoint returns the tls-server-end-point channel binding data
// of cert, the certificate a TLS server presented: a hash of its DER
// encoding. RFC 5929, section 4.1, takes the hash function of the
// certificate's signature algorithm, with SHA-256 in place of MD5 and
// SHA-1. For an algorithm without exactly one such hash function (Ed25519,
// say) the binding is undefined and an error is returned.
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	var h hash.Hash

	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, fmt.Errorf("scram: %s channel binding is undefined for certificates signed with %v",
			BindingType, cert.SignatureAlgorithm)
	}

	h.Write(cert.Raw)

	return h.Sum(nil), nil
}
