package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/snapshot"
)

// Snapshots is what the controller needs from the snapshot catalog;
// *snapshot.Manager implements it.
type Snapshots interface {
	Resolve(dataset, id string) (snapshot.Snapshot, error)
	Dataset(name string) (snapshot.Dataset, bool)
	Database(dataset string) string
}

// Config configures a [Controller].
type Config struct {
	// Driver boots and stops instances. Required.
	Driver Driver

	// Snapshots resolves datasets and snapshot IDs. Required.
	Snapshots Snapshots

	// MaxInstances caps the instances booting or running at once. When
	// the cap is reached, the least recently used idle instance is
	// stopped to make room; with none idle, Acquire fails with a
	// [LimitError]. Zero means 8.
	MaxInstances int

	// MaxUserInstances caps the instances one user holds connections to
	// at once. Zero means no cap.
	MaxUserInstances int

	// IdleTimeout is how long an instance without connections keeps
	// running. Zero means 5 minutes.
	IdleTimeout time.Duration

	// BootTimeout bounds one boot. Zero means 2 minutes.
	BootTimeout time.Duration

	// Private gives each user instances of their own instead of one
	// instance per dataset and snapshot shared by all users.
	Private bool

	// StartupScripts are SQL scripts run as the dataset's superuser in
	// every new instance of a dataset, by dataset name.
	StartupScripts map[string][]string

	// Warm keeps instances booted ahead of demand from the newest ready
	// snapshot of each dataset in Datasets that has one. Shared: the
	// dataset's shared instance is kept up while idle (any Warm > 0).
	// Private: Warm unowned spares per dataset; a user's first
	// connection claims one and the pool boots a replacement. Warm
	// instances count against MaxInstances and are the first stopped to
	// make room. Zero means no warm pool.
	Warm int

	// Datasets names the datasets the warm pool serves.
	Datasets []string

	// WarmInterval is how often the warm pool looks for newer snapshots
	// and refills. Zero means 5 seconds.
	WarmInterval time.Duration

	// Logger receives lifecycle messages. Nil discards them.
	Logger *slog.Logger
}

// LimitError is returned by [Controller.Acquire] when a limit forbids
// another instance.
type LimitError struct {
	// Limit names the setting: max_instances or max_user_instances.
	Limit string
	Max   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("instance: limit reached: %s = %d instances, none idle", e.Limit, e.Max)
}

// BootError is returned by [Controller.Acquire] when the instance could
// not be booted.
type BootError struct {
	Dataset  string
	Snapshot string
	Err      error
}

func (e *BootError) Error() string {
	return fmt.Sprintf("instance: boot %s@%s: %v", e.Dataset, e.Snapshot, e.Err)
}

func (e *BootError) Unwrap() error { return e.Err }

// ErrClosed is returned by [Controller.Acquire] after [Controller.Close].
var ErrClosed = errors.New("instance: controller closed")

// Request asks for an instance.
type Request struct {
	// User is the authenticated proxy user.
	User string

	// Dataset names the dataset; Snapshot a snapshot ID, "" for the
	// newest ready one.
	Dataset  string
	Snapshot string

	// Progress, when set, is called (from Acquire's goroutine) with a
	// short message when the request has to wait for a boot.
	Progress func(msg string)
}

// Controller manages instances. It is safe for concurrent use.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	ctx  context.Context // the controller's lifetime, ended by Close
	stop context.CancelFunc
	wg   sync.WaitGroup // boots and stops in flight

	kick chan struct{} // wakes the warm pool; buffered, never closed

	// mu guards everything below.
	mu      sync.Mutex
	byKey   map[string]*inst
	closed  bool
	boots   int                  // boots started, warm ones included
	newest  map[string]string    // dataset -> newest ready snapshot seen by the pool
	retryAt map[string]time.Time // dataset -> no warm boot before, after one failed
	warnErr map[string]string    // dataset -> last catalog error logged
}

// inst is one instance the controller knows. Fields other than the
// immutable ones are guarded by Controller.mu.
type inst struct {
	key, id           string
	dataset, snapshot string
	owner             string // private instances only
	started           time.Time
	pool              bool // booted by the warm pool

	spare bool // an unowned warm instance waiting to be claimed (private)

	ready chan struct{} // closed when the boot ended
	err   error         // the boot's error, set before ready closes
	ep    Endpoint      // set before ready closes

	refs     int
	users    map[string]int
	idle     *time.Timer
	lastUsed time.Time
	stopping bool
}

// New returns a controller and reconciles the driver, removing what an
// earlier crash left behind.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Driver == nil || cfg.Snapshots == nil {
		return nil, errors.New("instance: driver and snapshots are required")
	}

	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 8
	}

	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}

	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 2 * time.Minute
	}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	removed, err := cfg.Driver.Reconcile(ctx)
	if err != nil {
		return nil, fmt.Errorf("instance: reconcile: %w", err)
	}

	if len(removed) > 0 {
		log.InfoContext(ctx, "reconciled instances left by a crash", "removed", len(removed))
	}

	if cfg.WarmInterval <= 0 {
		cfg.WarmInterval = 5 * time.Second
	}

	cctx, stop := context.WithCancel(context.Background())
	c := &Controller{
		cfg:     cfg,
		log:     log,
		ctx:     cctx,
		stop:    stop,
		kick:    make(chan struct{}, 1),
		byKey:   map[string]*inst{},
		newest:  map[string]string{},
		retryAt: map[string]time.Time{},
		warnErr: map[string]string{},
	}

	if cfg.Warm > 0 && len(cfg.Datasets) > 0 {
		c.wg.Add(1)
		go c.warmLoop()
	}

	return c, nil
}

// Lease is one connection's hold on an instance. Release it exactly once.
type Lease struct {
	// Endpoint reaches the instance.
	Endpoint Endpoint

	// InstanceID, Dataset and Snapshot say what is served.
	InstanceID string
	Dataset    string
	Snapshot   string

	c    *Controller
	in   *inst
	user string
	once sync.Once
}

// Release ends the lease; the instance's idle timer starts when it was
// the last one.
func (l *Lease) Release() {
	l.once.Do(func() { l.c.release(l.in, l.user) })
}

// Acquire returns a lease on an instance serving req, booting one when
// none exists. Concurrent requests for the same instance share one boot.
// Errors: wrapping [snapshot.ErrUnknownDataset] or [snapshot.ErrNotFound],
// a [*LimitError], a [*BootError], ctx's error, or [ErrClosed].
func (c *Controller) Acquire(ctx context.Context, req Request) (*Lease, error) {
	snap, err := c.cfg.Snapshots.Resolve(req.Dataset, req.Snapshot)
	if err != nil {
		return nil, err
	}

	key := req.Dataset + "@" + snap.ID
	owner := ""
	if c.cfg.Private {
		owner = req.User
		key += "/" + req.User
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}

	if req.Snapshot == "" {
		c.noteNewestLocked(req.Dataset, snap.ID)
	}

	in := c.byKey[key]
	if in != nil && !in.stopping {
		err = c.checkUserLocked(in, req.User)
	} else if in = c.spareLocked(req.Dataset, snap.ID); in != nil {
		if err = c.checkUserLocked(in, req.User); err == nil {
			c.claimLocked(in, key, owner)
		}
	} else {
		in, err = c.newInstLocked(key, req, snap, owner)
	}

	if err != nil {
		c.mu.Unlock()
		return nil, err
	}

	in.refs++
	in.users[req.User]++
	in.lastUsed = time.Now()
	if in.idle != nil {
		in.idle.Stop()
		in.idle = nil
	}
	c.mu.Unlock()

	lease := &Lease{InstanceID: in.id, Dataset: in.dataset, Snapshot: in.snapshot, c: c, in: in, user: req.User}

	select {
	case <-in.ready:
	default:
		if req.Progress != nil {
			req.Progress(fmt.Sprintf("booting an instance of %s from snapshot %s", req.Dataset, snap.ID))
		}

		select {
		case <-in.ready:
		case <-ctx.Done():
			lease.Release()
			return nil, ctx.Err()
		}
	}

	if in.err != nil {
		lease.Release()
		return nil, in.err
	}

	lease.Endpoint = in.ep

	return lease, nil
}

// checkUserLocked enforces MaxUserInstances for user joining in (nil
// for an instance not registered yet).
func (c *Controller) checkUserLocked(in *inst, user string) error {
	if c.cfg.MaxUserInstances <= 0 || (in != nil && in.users[user] > 0) {
		return nil
	}

	n := 0
	for _, other := range c.byKey {
		if other.users[user] > 0 {
			n++
		}
	}

	if n >= c.cfg.MaxUserInstances {
		return &LimitError{Limit: "max_user_instances", Max: c.cfg.MaxUserInstances}
	}

	return nil
}

// newInstLocked registers a new instance for key and starts its boot,
// stopping an idle instance when at the cap: a warm one first, else the
// least recently used.
func (c *Controller) newInstLocked(key string, req Request, snap snapshot.Snapshot, owner string) (*inst, error) {
	if err := c.checkUserLocked(nil, req.User); err != nil {
		return nil, err
	}

	if len(c.byKey) >= c.cfg.MaxInstances {
		var victim *inst
		for _, other := range c.byKey {
			if other.refs == 0 && isClosed(other.ready) && (victim == nil || c.evictBeforeLocked(other, victim)) {
				victim = other
			}
		}

		if victim == nil {
			return nil, &LimitError{Limit: "max_instances", Max: c.cfg.MaxInstances}
		}

		c.log.Info("stopping idle instance to make room", "instance", victim.id, "warm", c.warmLocked(victim))
		c.stopLocked(victim)
	}

	return c.startLocked(key, req.Dataset, snap, owner, false), nil
}

// evictBeforeLocked reports whether idle instance a is stopped before b
// to make room: warm instances first, then the least recently used.
func (c *Controller) evictBeforeLocked(a, b *inst) bool {
	if wa, wb := c.warmLocked(a), c.warmLocked(b); wa != wb {
		return wa
	}

	return a.lastUsed.Before(b.lastUsed)
}

// startLocked registers an instance of snap for key and boots it in the
// background. pool marks the warm pool's boots; with private instances
// they are spares.
func (c *Controller) startLocked(key, dataset string, snap snapshot.Snapshot, owner string, pool bool) *inst {
	in := &inst{
		key:      key,
		id:       dataset + "-" + randomHex(4),
		dataset:  dataset,
		snapshot: snap.ID,
		owner:    owner,
		started:  time.Now(),
		pool:     pool,
		spare:    pool && c.cfg.Private,
		ready:    make(chan struct{}),
		users:    map[string]int{},
	}
	c.byKey[key] = in
	c.boots++

	ds, _ := c.cfg.Snapshots.Dataset(dataset)
	spec := Spec{
		ID:             in.id,
		Dataset:        dataset,
		SnapshotID:     snap.ID,
		SnapshotDir:    snap.DataDir,
		Database:       c.cfg.Snapshots.Database(dataset),
		Role:           ds.RoleName(),
		Superuser:      superuser(ds),
		StartupScripts: c.cfg.StartupScripts[dataset],
	}

	c.wg.Add(1)
	go c.boot(in, spec)

	return in
}

func superuser(ds snapshot.Dataset) string {
	if ds.Superuser != "" {
		return ds.Superuser
	}

	return "postgres"
}

// boot runs the driver for in and publishes the result.
func (c *Controller) boot(in *inst, spec Spec) {
	defer c.wg.Done()

	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.BootTimeout)
	defer cancel()

	start := time.Now()
	ep, err := c.cfg.Driver.Start(ctx, spec)

	c.mu.Lock()
	defer c.mu.Unlock()

	if err != nil {
		in.err = &BootError{Dataset: in.dataset, Snapshot: in.snapshot, Err: err}
		if c.byKey[in.key] == in {
			delete(c.byKey, in.key)
		}

		if in.pool {
			c.retryAt[in.dataset] = time.Now().Add(warmRetryDelay)
		}

		close(in.ready)
		if c.closed {
			c.log.Info("instance boot cancelled by shutdown", "instance", in.id)
		} else {
			c.log.Error("instance boot failed", "instance", in.id, "err", err)
		}

		return
	}

	in.ep = ep
	close(in.ready)
	c.log.Info("instance ready",
		"instance", in.id,
		"dataset", in.dataset,
		"snapshot", in.snapshot,
		"warm", in.pool,
		"duration", time.Since(start).Round(time.Millisecond))

	if in.refs == 0 && !c.warmLocked(in) {
		c.armIdleLocked(in)
	}
}

// release ends one lease on in.
func (c *Controller) release(in *inst, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()

	in.refs--
	if in.users[user]--; in.users[user] <= 0 {
		delete(in.users, user)
	}

	in.lastUsed = time.Now()
	if in.refs == 0 && isClosed(in.ready) && in.err == nil && !in.stopping && !c.warmLocked(in) {
		c.armIdleLocked(in)
	}
}

func (c *Controller) armIdleLocked(in *inst) {
	if in.idle != nil {
		in.idle.Stop()
	}

	in.idle = time.AfterFunc(c.cfg.IdleTimeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()

		if in.refs != 0 || in.stopping || c.byKey[in.key] != in {
			return
		}

		if c.warmLocked(in) {
			// It became the warm instance while the timer ran.
			in.idle = nil
			return
		}

		c.log.Info("stopping idle instance", "instance", in.id)
		c.stopLocked(in)
	})
}

// stopLocked removes in from the map and stops it in the background.
func (c *Controller) stopLocked(in *inst) {
	in.stopping = true
	if in.idle != nil {
		in.idle.Stop()
		in.idle = nil
	}

	if c.byKey[in.key] == in {
		delete(c.byKey, in.key)
	}

	// A free slot may let the warm pool refill.
	c.kickWarm()

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		if err := c.cfg.Driver.Stop(ctx, in.id); err != nil {
			c.log.Warn("instance stop failed", "instance", in.id, "err", err)
		}
	}()
}

// StopIdle stops every ready instance without connections now, instead
// of when its idle timeout expires, and returns when they are gone. Warm
// instances are stopped too; the warm pool then boots new ones.
func (c *Controller) StopIdle(ctx context.Context) error {
	c.mu.Lock()
	var idle []*inst
	for _, in := range c.byKey {
		if in.refs == 0 && isClosed(in.ready) && !in.stopping {
			in.stopping = true
			if in.idle != nil {
				in.idle.Stop()
				in.idle = nil
			}

			delete(c.byKey, in.key)
			idle = append(idle, in)
		}
	}
	c.mu.Unlock()

	var errs []error
	for _, in := range idle {
		c.log.InfoContext(ctx, "stopping idle instance on request", "instance", in.id)
		errs = append(errs, c.cfg.Driver.Stop(ctx, in.id))
	}

	c.kickWarm()

	return errors.Join(errs...)
}

// InUse reports whether an instance of this controller uses the snapshot.
func (c *Controller) InUse(snapshotID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()

	for _, in := range c.byKey {
		if in.snapshot == snapshotID {
			return true
		}
	}

	return false
}

// Status lists the instances, sorted by ID.
func (c *Controller) Status() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()

	out := make([]Status, 0, len(c.byKey))
	for _, in := range c.byKey {
		st := Status{
			ID:       in.id,
			Dataset:  in.dataset,
			Snapshot: in.snapshot,
			Owner:    in.owner,
			State:    "booting",
			Warm:     c.warmLocked(in),
			Conns:    in.refs,
			Started:  in.started,
			LastUsed: in.lastUsed,
		}
		if isClosed(in.ready) {
			st.State = "ready"
			if st.Warm && in.refs == 0 {
				st.State = "warm"
			}

			st.Host, st.TCPAddr = in.ep.Host, in.ep.TCPAddr
		}

		out = append(out, st)
	}

	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })

	return out
}

// Close stops every instance and waits for boots and stops in flight, or
// returns ctx's error when it ends first. Leases still held become
// useless; Acquire returns [ErrClosed].
func (c *Controller) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.stop()
	for _, in := range c.byKey {
		if isClosed(in.ready) {
			c.stopLocked(in)
		}
	}
	c.mu.Unlock()

	done := make(chan struct{})
	go func() {
		c.wg.Wait()

		// Boots that were in flight ended (cancelled or not): stop
		// what they left.
		c.mu.Lock()
		for _, in := range c.byKey {
			c.stopLocked(in)
		}
		c.mu.Unlock()

		c.wg.Wait()
		close(done)
	}()

	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)

	return hex.EncodeToString(b)
}
