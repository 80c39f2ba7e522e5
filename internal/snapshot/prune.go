package snapshot

import (
	"context"
	"fmt"
	"sort"
)

// InUse reports whether an instance uses the snapshot with the given ID.
type InUse func(id string) bool

// Prune keeps the newest Keep ready snapshots of every dataset and deletes
// the older ones and the failed ones, except snapshots inUse reports (nil
// means none is in use). It returns the deleted snapshots.
func (m *Manager) Prune(ctx context.Context, inUse InUse) ([]Snapshot, error) {
	all, err := m.List(ctx)
	if err != nil {
		return nil, err
	}

	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID })

	kept := map[string]int{}
	var victims []Snapshot

	for _, s := range all {
		switch s.State {
		case StateReady:
			keep := m.cfg.Datasets[s.Dataset].keep()
			if kept[s.Dataset] < keep {
				kept[s.Dataset]++
				continue
			}
		case StateFailed:
		default:
			continue // in progress
		}

		if inUse != nil && inUse(s.ID) {
			continue
		}

		victims = append(victims, s)
	}

	var deleted []Snapshot
	for _, s := range victims {
		if err := m.Delete(ctx, s.ID, inUse); err != nil {
			return deleted, err
		}

		deleted = append(deleted, s)
	}

	return deleted, nil
}

// Delete removes one snapshot and its files, unless inUse reports it in
// use (then the error says so). It returns an error wrapping [ErrNotFound]
// for an unknown ID.
func (m *Manager) Delete(ctx context.Context, id string, inUse InUse) error {
	if inUse != nil && inUse(id) {
		return fmt.Errorf("snapshot: %s is in use by an instance", id)
	}

	var snap Snapshot
	err := m.cat.locked(true, func(cf *catalogFile) error {
		s, ok := cf.get(id)
		if !ok {
			return fmt.Errorf("%w: snapshot %q", ErrNotFound, id)
		}

		if s.State == StateCreating || s.State == StateMasking {
			return fmt.Errorf("snapshot: %s is still being created", id)
		}

		s.State = StateDeleting
		s.PID = pidSelf()
		cf.put(s)
		snap = s

		return nil
	})
	if err != nil {
		return err
	}

	m.removeFiles(id)

	if err := m.cat.locked(true, func(cf *catalogFile) error {
		cf.remove(id)
		return nil
	}); err != nil {
		return err
	}

	m.log.InfoContext(ctx, "snapshot deleted", "snapshot", id, "dataset", snap.Dataset)

	return nil
}
