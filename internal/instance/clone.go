package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Clone modes of [LocalConfig.Clone].
const (
	CloneAuto    = "auto"
	CloneOverlay = "overlay"
	CloneCopy    = "copy"
)

// errOverlayPath means a path cannot be written in overlay mount options.
var errOverlayPath = errors.New("path holds ',', ':' or '\\', which overlay mount options cannot carry")

// clone makes dir/data from the snapshot snapDir. An overlay mount is the
// fast way: the snapshot is its read-only lower layer and files the
// instance writes are copied up into dir/upper whole, so booting costs
// no copy whatever the snapshot's size (PostgreSQL's files are at most
// 1 GiB). A copy (cp --reflink=auto, a clone on btrfs and XFS) is the way
// without the privilege to mount. Stop and Reconcile unmount whatever
// dir/data is, so nothing records which way was taken.
func (l *Local) clone(ctx context.Context, snapDir, dir string) error {
	data := filepath.Join(dir, "data")
	if l.cfg.Clone != CloneCopy {
		err := l.mountOverlay(snapDir, dir)
		if err == nil {
			return nil
		}

		if l.cfg.Clone == CloneOverlay {
			return err
		}

		l.overlayOnce.Do(func() {
			l.log.InfoContext(ctx, "instances boot from copies of snapshots", "reason", err.Error())
		})

		// Leave dir as the copy expects it.
		for _, d := range []string{"upper", "work", "data"} {
			_ = os.RemoveAll(filepath.Join(dir, d))
		}
	}

	return copyDir(ctx, snapDir, data)
}

// mountOverlay mounts dir/data as an overlay of snapDir.
func (l *Local) mountOverlay(snapDir, dir string) error {
	if strings.ContainsAny(snapDir+dir, ",:\\") {
		return fmt.Errorf("instance: overlay of %s: %w", snapDir, errOverlayPath)
	}

	upper, work, data := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "data")
	for _, d := range []string{upper, work, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("instance: overlay: %w", err)
		}
	}

	// The merged root takes the upper root's owner and mode, and
	// PostgreSQL wants its data directory 0700 and its own.
	if err := l.runner.Chown(upper); err != nil {
		return err
	}

	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", snapDir, upper, work)
	if err := unix.Mount("overlay", data, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("instance: mount overlay of %s (needs CAP_SYS_ADMIN): %w", snapDir, err)
	}

	return nil
}

// unmountData unmounts dir/data if it is a mount, detaching it when busy.
func unmountData(dir string) error {
	data := filepath.Join(dir, "data")

	err := unix.Unmount(data, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(data, unix.MNT_DETACH)
	}

	// EINVAL: not a mount point (a copy); ENOENT: no data at all.
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}

	return fmt.Errorf("instance: unmount %s: %w", data, err)
}
