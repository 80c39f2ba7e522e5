package instance

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// Driver boots and stops instances. Implementations must be safe for
// concurrent use.
type Driver interface {
	// Start boots an instance of spec, runs its startup scripts, and
	// returns once it accepts connections. On error nothing of the
	// instance is left.
	Start(ctx context.Context, spec Spec) (Endpoint, error)

	// Stop stops the instance with the given ID and removes everything
	// it used. Stopping an unknown ID is not an error.
	Stop(ctx context.Context, id string) error

	// Reconcile removes instances that no live controller owns, left by
	// a crash, and returns their IDs.
	Reconcile(ctx context.Context) ([]string, error)
}

// Spec describes an instance to boot.
type Spec struct {
	// ID names the instance; unique among live instances.
	ID string

	// Dataset and SnapshotID say what the instance serves.
	Dataset    string
	SnapshotID string

	// SnapshotDir is the snapshot's data directory to boot from; the
	// driver copies it and never changes it.
	SnapshotDir string

	// Database is the database clients reach inside the instance.
	Database string

	// Role is the role clients are served as; Superuser runs the
	// startup scripts.
	Role      string
	Superuser string

	// StartupScripts are SQL scripts run as Superuser in Database once
	// the instance is up, before any client uses it.
	StartupScripts []string
}

// Endpoint tells how to reach an instance.
type Endpoint struct {
	// Host and Port in libpq terms: for a Unix socket, Host is the socket
	// directory.
	Host string
	Port int

	// User is the role to connect as, Database the database.
	User     string
	Database string

	// TCPAddr is a loopback host:port when the driver also listens on
	// TCP, "" otherwise.
	TCPAddr string
}

// Network returns the network and address to dial the endpoint.
func (e Endpoint) Network() (network, address string) {
	if filepath.IsAbs(e.Host) {
		return "unix", filepath.Join(e.Host, ".s.PGSQL."+strconv.Itoa(e.Port))
	}

	return "tcp", net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// DSN returns a keyword/value connection string for the endpoint.
func (e Endpoint) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", e.Host, e.Port, e.User, e.Database)
}

// Status describes one instance for the admin view.
type Status struct {
	ID       string    `json:"id"`
	Dataset  string    `json:"dataset"`
	Snapshot string    `json:"snapshot"`
	Owner    string    `json:"owner,omitempty"` // user, for private instances
	State    string    `json:"state"`           // booting, ready, warm (ready, kept by the warm pool, no connections)
	Warm     bool      `json:"warm,omitempty"`  // kept booted by the warm pool
	Conns    int       `json:"connections"`
	Host     string    `json:"host,omitempty"`     // socket directory, once ready
	TCPAddr  string    `json:"tcp_addr,omitempty"` // with a TCP-enabled driver
	Started  time.Time `json:"started"`
	LastUsed time.Time `json:"last_used"`
}
