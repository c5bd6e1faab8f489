package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Module is one Go module of a binary's build, as runtime/debug reports it.
type Module struct {
	Path    string  // module path
	Version string  // module version ("(devel)" for an untagged main module)
	Sum     string  // go.sum checksum ("h1:..."), "" for the main module
	Replace *Module // the replacement, if a replace directive applied
}

// EffectiveVersion is the version of the code that was built: the
// replacement's when the module was replaced ("" for a local directory).
func (m Module) EffectiveVersion() string {
	if m.Replace != nil {
		return m.Replace.Version
	}
	return m.Version
}

// Measurement is what a node measures about itself: the hash of its
// executable, its Go build information (a supply-chain record: every module
// linked in, with version and checksum), the hashes of its configuration and
// active policy, and how long it has been running.
type Measurement struct {
	BinarySHA256 string        // lowercase hex SHA-256 of the executable file
	GoVersion    string        // toolchain that built it, e.g. "go1.26.8"
	MainModule   Module        // the main module
	Deps         []Module      // every dependency module, sorted by path
	ConfigSHA256 string        // lowercase hex SHA-256 of the config, "" if none
	PolicySHA256 string        // HashPolicy of the active policy, "" if none
	Uptime       time.Duration // since the node started, 0 if unknown
}

// MeasureOptions says what Measure measures. The zero value measures the
// running executable and its build information, with no config, no policy
// and an uptime of 0.
type MeasureOptions struct {
	// Executable is the file to hash. "" is the running executable: on
	// Linux /proc/self/exe, which is the file the process was started from
	// even if the path has since been replaced; elsewhere os.Executable().
	Executable string
	// BinarySHA256, if set (lowercase hex), is used instead of hashing the
	// executable, for callers that hash it once at start-up.
	BinarySHA256 string
	// BuildInfo is the build information to record; nil reads the running
	// binary's with debug.ReadBuildInfo.
	BuildInfo *debug.BuildInfo
	// Config is the node's configuration file's content; ConfigSHA256 is
	// its hash if the caller already has it. Set at most one.
	Config       []byte
	ConfigSHA256 string
	// PolicySHA256 is the active policy's hash, HashPolicy(modules).
	PolicySHA256 string
	// Start is when the node started and Now the time of the measurement;
	// Uptime is Now-Start, or 0 if either is zero.
	Start, Now time.Time
}

// Measure measures the running node as opts says. Hashing the executable
// reads the whole file (tens of MB: tens of milliseconds); callers that
// measure often can pass BinarySHA256.
func Measure(opts MeasureOptions) (*Measurement, error) {
	m := &Measurement{}
	var err error
	switch {
	case opts.BinarySHA256 != "":
		if !isHexSHA256(opts.BinarySHA256) {
			return nil, fmt.Errorf("%w: binary hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(opts.BinarySHA256))
		}
		m.BinarySHA256 = opts.BinarySHA256
	default:
		path := opts.Executable
		if path == "" {
			if path, err = executable(); err != nil {
				return nil, fmt.Errorf("measure: locate executable: %w", err)
			}
		}
		if m.BinarySHA256, err = HashFile(path); err != nil {
			return nil, fmt.Errorf("measure: %w", err)
		}
	}

	bi := opts.BuildInfo
	if bi == nil {
		var ok bool
		if bi, ok = debug.ReadBuildInfo(); !ok {
			return nil, fmt.Errorf("measure: %w", ErrNoBuildInfo)
		}
	}
	m.GoVersion = bi.GoVersion
	m.MainModule = moduleOf(&bi.Main)
	m.Deps = make([]Module, 0, len(bi.Deps))
	for _, d := range bi.Deps {
		m.Deps = append(m.Deps, moduleOf(d))
	}
	slices.SortFunc(m.Deps, func(a, b Module) int { return strings.Compare(a.Path, b.Path) })

	switch {
	case opts.Config != nil && opts.ConfigSHA256 != "":
		return nil, fmt.Errorf("measure: give the config or its hash, not both")
	case opts.Config != nil:
		m.ConfigSHA256 = HashBytes(opts.Config)
	case opts.ConfigSHA256 != "":
		if !isHexSHA256(opts.ConfigSHA256) {
			return nil, fmt.Errorf("%w: config hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(opts.ConfigSHA256))
		}
		m.ConfigSHA256 = opts.ConfigSHA256
	}
	if opts.PolicySHA256 != "" && !isHexSHA256(opts.PolicySHA256) {
		return nil, fmt.Errorf("%w: policy hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(opts.PolicySHA256))
	}
	m.PolicySHA256 = opts.PolicySHA256
	if !opts.Start.IsZero() && !opts.Now.IsZero() && opts.Now.After(opts.Start) {
		m.Uptime = opts.Now.Sub(opts.Start)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	return m, nil
}

func moduleOf(d *debug.Module) Module {
	m := Module{Path: d.Path, Version: d.Version, Sum: d.Sum}
	if d.Replace != nil {
		r := moduleOf(d.Replace)
		r.Replace = nil // a replacement is not itself replaced
		m.Replace = &r
	}
	return m
}

// executable returns the path of the running executable's file.
func executable() (string, error) {
	if runtime.GOOS == "linux" {
		// /proc/self/exe is a link to the inode the process runs, even
		// after an upgrade replaced the file at the original path.
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			return "/proc/self/exe", nil
		}
	}
	return os.Executable()
}

// HashFile returns the lowercase hex SHA-256 of a file's content, read in a
// stream.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashBytes returns the lowercase hex SHA-256 of b.
func HashBytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// policyHashLabel separates policy hashes from every other SHA-256 in ztmesh.
const policyHashLabel = "ztmesh/policy-modules/v1"

// HashPolicy returns the hash of a policy: its Rego modules by name, as
// policy.Engine.Modules returns them. It does not depend on map order: it
// is SHA-256 over the label "ztmesh/policy-modules/v1", then for each module
// in name order its name and source, each preceded by its length as a
// big-endian uint64. A nil or empty map has a hash too (of no modules).
func HashPolicy(modules map[string]string) string {
	h := sha256.New()
	h.Write([]byte(policyHashLabel))
	var n [8]byte
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		for _, s := range []string{name, modules[name]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			io.WriteString(h, s)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
