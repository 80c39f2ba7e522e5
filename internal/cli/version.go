package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the pgtide release, set at build time with
// -ldflags "-X github.com/pgtide/pgtide/internal/cli.Version=v1.2.3".
// Without it the module version, or "dev", is shown.
var Version = ""

// version returns Version or the best the build information offers.
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// revision returns the VCS commit the binary was built from, if known,
// with a "+dirty" mark for uncommitted changes.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func (e *env) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the pgtide version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(e.stdout, "pgtide %s (%s, %s/%s",
				version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if rev := revision(); rev != "" {
				fmt.Fprintf(e.stdout, ", commit %s", rev)
			}
			fmt.Fprintln(e.stdout, ")")
			return nil
		},
	}
}
