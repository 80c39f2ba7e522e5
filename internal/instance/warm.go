package instance

import (
	"errors"
	"time"

	"github.com/pgtide/pgtide/internal/snapshot"
)

// warmRetryDelay is how long the warm pool waits before booting again
// for a dataset after one of its boots failed.
const warmRetryDelay = 30 * time.Second

// The warm pool keeps instances booted from the newest ready snapshot of
// each dataset in Config.Datasets, so that a first connection finds one
// up. One goroutine, owned by the controller, refills the pool every
// WarmInterval and when kicked (after a claim or a stop). It only uses
// free slots under MaxInstances: it never stops an instance to make room
// for a warm one, while a real request stops warm ones first.
//
// Shared instances: the instance for (dataset, newest snapshot) is the
// warm one. It arms no idle timer while it is; once a newer snapshot
// appears it becomes an ordinary instance, and stops after IdleTimeout
// without connections.
//
// Private instances: spares are owned by no user and keyed apart from
// user instances. Acquire claims one for the user (re-keying it), so
// the startup scripts already ran; a spare of an older snapshot is
// stopped at once, since it has no connections by definition.

// warmLoop refills the warm pool until the controller closes.
func (c *Controller) warmLoop() {
	defer c.wg.Done()

	t := time.NewTicker(c.cfg.WarmInterval)
	defer t.Stop()

	for {
		c.fillWarm()

		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

// kickWarm wakes the warm pool without waiting for it.
func (c *Controller) kickWarm() {
	if c.cfg.Warm <= 0 {
		return
	}

	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// fillWarm runs one pass of the warm pool over every dataset.
func (c *Controller) fillWarm() {
	for _, ds := range c.cfg.Datasets {
		// The catalog is read outside the lock: it takes a file lock.
		snap, err := c.cfg.Snapshots.Resolve(ds, "")

		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}

		if err != nil {
			c.catalogErrorLocked(ds, err)
		} else {
			delete(c.warnErr, ds)
			c.fillDatasetLocked(ds, snap)
		}
		c.mu.Unlock()
	}
}

// catalogErrorLocked logs a failure to resolve dataset's newest snapshot
// once per distinct error. A dataset without a ready snapshot is not an
// error: there is nothing to warm yet.
func (c *Controller) catalogErrorLocked(dataset string, err error) {
	if errors.Is(err, snapshot.ErrNotFound) || c.warnErr[dataset] == err.Error() {
		return
	}

	c.warnErr[dataset] = err.Error()
	c.log.Warn("warm pool cannot read the snapshot catalog", "dataset", dataset, "err", err)
}

// fillDatasetLocked moves dataset's warm instances to snap, its newest
// ready snapshot, and boots the missing ones while slots are free.
func (c *Controller) fillDatasetLocked(dataset string, snap snapshot.Snapshot) {
	c.newest[dataset] = snap.ID

	for _, in := range c.byKey {
		if in.dataset != dataset || in.snapshot == snap.ID || in.stopping || !isClosed(in.ready) || in.err != nil {
			continue
		}

		switch {
		case in.spare:
			c.log.Info("stopping warm instance of an older snapshot", "instance", in.id, "snapshot", in.snapshot)
			c.stopLocked(in)
		case in.refs == 0 && in.idle == nil:
			// The former warm instance: it now stops when idle.
			c.armIdleLocked(in)
		}
	}

	if time.Now().Before(c.retryAt[dataset]) {
		return
	}

	want, have := c.cfg.Warm, 0
	if !c.cfg.Private {
		want = 1
		if in := c.byKey[sharedKey(dataset, snap.ID)]; in != nil && !in.stopping {
			have = 1
		}
	} else {
		for _, in := range c.byKey {
			if in.spare && in.dataset == dataset && in.snapshot == snap.ID {
				have++
			}
		}
	}

	for ; have < want && len(c.byKey) < c.cfg.MaxInstances; have++ {
		key := sharedKey(dataset, snap.ID)
		if c.cfg.Private {
			key = "spare " + randomHex(8)
		}

		in := c.startLocked(key, dataset, snap, "", true)
		c.log.Info("booting warm instance", "instance", in.id, "dataset", dataset, "snapshot", snap.ID)
	}
}

// sharedKey is the key of the shared instance of dataset@snapshotID.
// Private and spare keys differ: the former add "/<user>", the latter
// have no "@" (dataset names cannot hold one).
func sharedKey(dataset, snapshotID string) string {
	return dataset + "@" + snapshotID
}

// noteNewestLocked records that snapshotID is dataset's newest ready
// snapshot when it is newer than what the pool knows, and wakes the pool
// to move to it. Datasets the pool does not serve are ignored.
func (c *Controller) noteNewestLocked(dataset, snapshotID string) {
	if old, ok := c.newest[dataset]; ok && snapshotID > old {
		c.newest[dataset] = snapshotID
		c.kickWarm()
	}
}

// warmLocked reports whether in is kept by the warm pool: a spare, or
// the shared instance of its dataset's newest snapshot.
func (c *Controller) warmLocked(in *inst) bool {
	if in.spare {
		return true
	}

	if c.cfg.Warm <= 0 || c.cfg.Private || in.err != nil {
		return false
	}

	newest, ok := c.newest[in.dataset]

	return ok && newest == in.snapshot
}

// spareLocked returns a spare of dataset@snapshotID to claim, preferring
// a ready one, or nil.
func (c *Controller) spareLocked(dataset, snapshotID string) *inst {
	if !c.cfg.Private {
		return nil
	}

	var found *inst
	for _, in := range c.byKey {
		if !in.spare || in.dataset != dataset || in.snapshot != snapshotID || in.stopping {
			continue
		}

		if isClosed(in.ready) {
			return in
		}

		found = in
	}

	return found
}

// claimLocked makes spare in the instance of owner under key, and wakes
// the pool to boot a replacement.
func (c *Controller) claimLocked(in *inst, key, owner string) {
	delete(c.byKey, in.key)

	in.key, in.owner, in.spare = key, owner, false
	c.byKey[key] = in

	c.log.Info("warm instance claimed", "instance", in.id, "user", owner)
	c.kickWarm()
}
