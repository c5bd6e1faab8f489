package simulations

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// The attack table's resource column: the simulation process's peak
// resident set size and its CPU use over a window (an attack, or the
// reference window with no attack). The suite runs in one process, so the
// figures are the whole simulated mesh's (every honest node, every
// attacker, mocknet), not one daemon's.

// usageEvery is how often the resident set size is sampled in a window.
const usageEvery = 200 * time.Millisecond

// maxProcStatus bounds what is read of /proc/self/status (about 1.5 KB on
// Linux).
const maxProcStatus = 16 << 10

// usage is what a window measured.
type usage struct {
	peakRSS uint64  // bytes; 0 if unknown
	cores   float64 // CPU time over wall time; NaN if unknown
}

// String formats u as "412 MB / 1.31 cores".
func (u usage) String() string {
	rss, cpu := "? MB", "? cores"
	if u.peakRSS > 0 {
		rss = fmt.Sprintf("%d MB", (u.peakRSS+500_000)/1_000_000)
	}
	if !math.IsNaN(u.cores) {
		cpu = fmt.Sprintf("%.2f cores", u.cores)
	}
	return rss + " / " + cpu
}

// against formats u next to the idle reference: "412 MB / 1.31 cores
// (idle 380 MB / 1.10)".
func (u usage) against(idle usage) string {
	ref := idle.String()
	if n := len(ref) - len(" cores"); n > 0 && ref[n:] == " cores" {
		ref = ref[:n]
	}
	return u.String() + " (idle " + ref + ")"
}

// usageWindow samples the process until stop.
type usageWindow struct {
	start   time.Time
	cpu0    time.Duration
	cpuOK   bool
	stopped chan struct{}
	done    sync.WaitGroup

	mu   sync.Mutex
	peak uint64
}

// measureUsage starts a window now.
func measureUsage() *usageWindow {
	w := &usageWindow{start: time.Now(), stopped: make(chan struct{})}
	w.cpu0, w.cpuOK = processCPU()
	w.sample()
	w.done.Go(func() {
		t := time.NewTicker(usageEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stopped:
				return
			case <-t.C:
				w.sample()
			}
		}
	})
	return w
}

func (w *usageWindow) sample() {
	rss, err := residentSet()
	if err != nil {
		return
	}
	w.mu.Lock()
	w.peak = max(w.peak, rss)
	w.mu.Unlock()
}

// stop ends the window and returns what it measured.
func (w *usageWindow) stop() usage {
	close(w.stopped)
	w.done.Wait()
	w.sample()
	u := usage{cores: math.NaN()}
	wall := time.Since(w.start)
	if cpu1, ok := processCPU(); ok && w.cpuOK && wall > 0 {
		u.cores = float64(cpu1-w.cpu0) / float64(wall)
	}
	w.mu.Lock()
	u.peakRSS = w.peak
	w.mu.Unlock()
	return u
}

// residentSet reads this process's resident set size from
// /proc/self/status (Linux only).
func residentSet() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcStatus))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

var errNoVmRSS = errors.New("no VmRSS line")

// parseVmRSS returns the VmRSS line of a /proc/<pid>/status text in bytes
// ("VmRSS:\t  412345 kB").
func parseVmRSS(b []byte) (uint64, error) {
	if len(b) > maxProcStatus {
		return 0, fmt.Errorf("status of %d bytes, limit %d", len(b), maxProcStatus)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil || kb > 1<<40 {
			return 0, fmt.Errorf("malformed VmRSS line %q", bytes.TrimSpace(line))
		}
		return kb * 1024, nil
	}
	return 0, errNoVmRSS
}
