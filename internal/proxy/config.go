package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pgtide/pgtide/internal/proxy/scram"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// Config configures a [Server]. Zero values mean the defaults given.
type Config struct {
	// Listen is the TCP address to accept clients on. "" means
	// 127.0.0.1:6433.
	Listen string

	// TLSCertFile and TLSKeyFile enable TLS for clients that ask for it
	// (SSLRequest). Without them, SSLRequest is answered 'N'.
	TLSCertFile string
	TLSKeyFile  string

	// TLSConfig, when set, is used instead of the files.
	TLSConfig *tls.Config

	// Users are the proxy's own users: name → SCRAM-SHA-256 verifier in
	// PostgreSQL's text form, or a plain password (hashed when loaded).
	// They are independent of the roles inside instances.
	Users map[string]string

	// DataDir is pgtide's data directory: snapshots/ and instances/ live
	// there. Required.
	DataDir string

	// BinDir holds the PostgreSQL programs. "" finds them.
	BinDir string

	// Datasets are the datasets clients may connect to, by name.
	Datasets map[string]Dataset

	// Instances are the resource controller's limits.
	Instances InstanceLimits

	// BootTimeout is how long a client waits for an instance to boot.
	// Zero means 60 s.
	BootTimeout time.Duration

	// HandshakeTimeout bounds TLS, startup and authentication. Zero
	// means 15 s.
	HandshakeTimeout time.Duration

	// MaxConnections caps client connections; MaxUserConnections caps
	// them per user. Zero means 200 and no per-user cap.
	MaxConnections     int
	MaxUserConnections int

	// Audit logs every statement clients send (simple Query and Parse
	// messages) with user, dataset and connection to AuditLogger (nil:
	// Logger). Off by default: bytes are then relayed unparsed.
	Audit       bool
	AuditLogger *slog.Logger

	// Relay chooses how bytes move between a client and its instance
	// once the session is set up: RelayKernel, RelayProcess or
	// RelayAuto ("", the default): in the kernel where it can load its
	// eBPF program, in the proxy process otherwise. Audit and TLS
	// sessions are always relayed in the process, which parses or
	// decrypts them.
	Relay string

	// Metrics receives the proxy's metrics. Nil keeps unregistered ones.
	Metrics *Metrics

	// Logger receives lifecycle and per-connection (debug) messages.
	// Nil discards them.
	Logger *slog.Logger
}

// Relay modes of [Config.Relay].
const (
	RelayAuto    = "auto"
	RelayKernel  = "kernel"
	RelayProcess = "process"
)

// Dataset is one dataset the proxy serves.
type Dataset struct {
	// Dataset is the snapshot configuration: source, masking, retention.
	snapshot.Dataset

	// Live is the connection string used for "<dataset>@live". "" means
	// Source. Give it a read-only role: the proxy sets
	// default_transaction_read_only, which a client can turn off.
	Live string

	// StartupScripts run as the superuser in every new instance.
	StartupScripts []string
}

// InstanceLimits configure the resource controller.
type InstanceLimits struct {
	// Max caps instances at once. Zero means 8.
	Max int

	// MaxPerUser caps the instances one user holds connections to.
	// Zero means no cap.
	MaxPerUser int

	// IdleTimeout stops an instance this long after its last connection
	// ended. Zero means 5 minutes.
	IdleTimeout time.Duration

	// Private gives every user their own instances instead of sharing
	// one per dataset and snapshot.
	Private bool

	// Warm keeps instances booted ahead of demand from the newest
	// snapshot of every dataset: its shared instance stays up while
	// idle, or, with Private, Warm unowned spares that first
	// connections claim. They count against Max. Zero means none.
	Warm int

	// Memory limits each instance's memory in bytes, enforced with a
	// cgroup per instance; New fails when no cgroup memory controller is
	// usable. Zero means no limit.
	Memory int64

	// Settings are server parameters for every instance.
	Settings map[string]string

	// Clone is how instances get their data directory from a snapshot:
	// instance.CloneOverlay, instance.CloneCopy or instance.CloneAuto
	// ("", overlay when the mount works).
	Clone string

	// TCP makes instances listen on a loopback port as well (trust
	// authentication, for benchmarks and debugging only).
	TCP bool
}

// SnapshotConfig returns the snapshot manager configuration matching cfg,
// for `pgtide snapshot` commands that run without a proxy.
func (cfg Config) SnapshotConfig() snapshot.Config {
	sc := snapshot.Config{DataDir: cfg.DataDir, BinDir: cfg.BinDir, Logger: cfg.Logger, Datasets: map[string]snapshot.Dataset{}}
	for name, ds := range cfg.Datasets {
		sc.Datasets[name] = ds.Dataset
	}

	return sc
}

// loadUsers turns the configured users into verifiers.
func loadUsers(users map[string]string) (map[string]scram.Verifier, error) {
	out := make(map[string]scram.Verifier, len(users))
	for name, secret := range users {
		if name == "" {
			return nil, fmt.Errorf("proxy: a user has an empty name")
		}

		if strings.HasPrefix(secret, scram.Mechanism+"$") {
			v, err := scram.ParseVerifier(secret)
			if err != nil {
				return nil, fmt.Errorf("proxy: user %s: %w", name, err)
			}

			out[name] = v

			continue
		}

		if secret == "" {
			return nil, fmt.Errorf("proxy: user %s has an empty password", name)
		}

		// References are resolved by config.Load; one arriving here was
		// never read, and must not become a password.
		if strings.HasPrefix(secret, "env:") || strings.HasPrefix(secret, "file:") {
			return nil, fmt.Errorf("proxy: user %s: secret reference %q was not resolved", name, secret)
		}

		v, err := scram.NewVerifier(secret, 0)
		if err != nil {
			return nil, fmt.Errorf("proxy: user %s: %w", name, err)
		}

		out[name] = v
	}

	return out, nil
}
