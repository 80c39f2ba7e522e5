//go:build !unix

package cli

import "os"

// tryLock does not lock on systems without flock; the data directory is
// then unprotected against a second process.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
