// Package buildinfo says which build of ztmesh is running: the version,
// commit and build date that `make build` and `make dist` stamp in with
// -ldflags, else what the Go toolchain recorded (the module version and the
// VCS revision and time of a build from a git checkout).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set with -ldflags "-X github.com/ztmesh/ztmesh/internal/buildinfo.version=v1.2.3 ...".
var (
	version string
	commit  string
	date    string
)

// Info describes a build.
type Info struct {
	Version string `json:"version"` // v1.2.3, or "devel"
	Commit  string `json:"commit"`  // 12 hex digits, "+dirty" if the tree was modified; "" if unknown
	Date    string `json:"date"`    // RFC 3339; "" if unknown
	Go      string `json:"go"`      // the Go version that built it
}

var get = sync.OnceValue(func() Info {
	i := Info{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i.withDefaults()
	}
	if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		i.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if i.Commit == "" {
				i.Commit = s.Value
			}
		case "vcs.time":
			if i.Date == "" {
				i.Date = s.Value
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(i.Commit) > 12 {
		i.Commit = i.Commit[:12]
	}
	if dirty && commit == "" && i.Commit != "" {
		i.Commit += "+dirty"
	}
	return i.withDefaults()
})

func (i Info) withDefaults() Info {
	if i.Version == "" {
		i.Version = "devel"
	}
	return i
}

// Get returns this binary's build information.
func Get() Info { return get() }

// String is the line `--version` prints: "ztmeshd v1.2.3 (commit
// 0123456789ab, built 2026-12-05T10:00:00Z, go1.26.8)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Commit != "" {
		s += "commit " + i.Commit + ", "
	}
	if i.Date != "" {
		s += "built " + i.Date + ", "
	}
	return s + i.Go + ")"
}

// Line is String with the program's name in front.
func Line(prog string) string { return fmt.Sprintf("%s %s", prog, Get()) }
