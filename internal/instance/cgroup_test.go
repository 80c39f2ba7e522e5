package instance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCgroupFS lays out cgroup directories under a temporary root: each
// entry maps a directory (relative to the root) to the content of its
// cgroup.subtree_control.
func fakeCgroupFS(t *testing.T, dirs map[string]string) string {
	t.Helper()

	root := t.TempDir()
	for dir, subtree := range dirs {
		d := filepath.Join(root, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}

		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte(subtree), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	return root
}

func TestPickCgroups(t *testing.T) {
	tests := []struct {
		name      string
		dirs      map[string]string
		mountinfo string // %s is the fake root
		self      string
		version   int
		base      string // relative to the fake root
		errHas    []string
	}{
		{
			name: "v2_root_with_memory",
			dirs: map[string]string{"v2": "cpu memory pids"},
			mountinfo: "30 23 0:26 / %s/v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n" +
				"31 23 0:27 / %s/mem rw - cgroup cgroup rw,memory\n",
			self:    "0::/\n",
			version: 2,
			base:    "v2/pgtide-x",
		},
		{
			name: "v2_without_memory_falls_back_to_v1",
			dirs: map[string]string{"unified": "", "mem/job/7": ""},
			mountinfo: "41 31 0:38 / %s/unified rw - cgroup2 cgroup2 rw\n" +
				"35 31 0:32 / %s/mem rw,relatime - cgroup cgroup rw,memory\n",
			self:    "4:memory:/job/7\n0::/\n",
			version: 1,
			base:    "mem/job/7/pgtide-x",
		},
		{
			name: "v1_mount_of_a_subtree",
			dirs: map[string]string{"mem": ""},
			mountinfo: "35 31 0:32 /docker/abc %s/mem rw - cgroup cgroup rw,memory\n" +
				"36 31 0:33 / %s/cpu rw - cgroup cgroup rw,cpu,cpuacct\n",
			self:    "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
			version: 1,
			base:    "mem/pgtide-x",
		},
		{
			name:      "v2_service_in_a_slice",
			dirs:      map[string]string{"v2/system.slice": "memory pids", "v2/system.slice/pgtide.service": ""},
			mountinfo: "30 23 0:26 / %s/v2 rw - cgroup2 cgroup2 rw\n",
			self:      "0::/system.slice/pgtide.service\n",
			version:   2,
			base:      "v2/system.slice/pgtide-x",
		},
		{
			name:      "v2_without_memory_and_no_v1",
			dirs:      map[string]string{"v2/app.slice": "cpu", "v2/app.slice/pgtide.service": ""},
			mountinfo: "30 23 0:26 / %s/v2 rw - cgroup2 cgroup2 rw\n",
			self:      "0::/app.slice/pgtide.service\n",
			errHas:    []string{"cgroup v2 at", "enabled neither for the children of", "app.slice/pgtide.service"},
		},
		{
			name:      "v2_root_without_memory",
			dirs:      map[string]string{"v2": "cpu"},
			mountinfo: "30 23 0:26 / %s/v2 rw - cgroup2 cgroup2 rw\n",
			self:      "0::/\n",
			errHas:    []string{"enabled neither"},
		},
		{
			name:      "nothing_mounted",
			mountinfo: "22 1 8:1 / / rw - ext4 /dev/root rw\n",
			self:      "0::/\n",
			errHas:    []string{"no cgroup file system is mounted"},
		},
		{
			name:      "outside_the_namespace",
			dirs:      map[string]string{"v2": "memory"},
			mountinfo: "30 23 0:26 / %s/v2 rw - cgroup2 cgroup2 rw\n",
			self:      "0::/../other\n",
			errHas:    []string{"outside its cgroup namespace"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeCgroupFS(t, tt.dirs)
			mountinfo := strings.ReplaceAll(tt.mountinfo, "%s", root)

			c, err := pickCgroups(mountinfo, tt.self, "pgtide-x", 256<<20)
			if tt.errHas != nil {
				if !errors.Is(err, ErrNoMemoryCgroup) {
					t.Fatalf("pickCgroups = %+v, %v; want ErrNoMemoryCgroup", c, err)
				}

				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("pickCgroups error %q does not mention %q", err, s)
					}
				}

				return
			}

			if err != nil {
				t.Fatalf("pickCgroups: %v", err)
			}

			if want := filepath.Join(root, tt.base); c.version != tt.version || c.base != want {
				t.Fatalf("pickCgroups = v%d %s, want v%d %s", c.version, c.base, tt.version, want)
			}

			if _, err := os.Stat(c.base); err != nil {
				t.Fatalf("base cgroup not created: %v", err)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cgroup`:        "/sys/fs/cgroup",
		`/mnt/my\040cgroups`:    "/mnt/my cgroups",
		`/a\134b`:               `/a\b`,
		`/trailing\04`:          `/trailing\04`,
		`/not\999octal\040here`: `/not\999octal here`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
