package simulations

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Latencies collects durations from many goroutines.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one latency.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Len is how many latencies were recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Sorted returns a sorted copy of the latencies.
func (l *Latencies) Sorted() []time.Duration {
	l.mu.Lock()
	out := slices.Clone(l.d)
	l.mu.Unlock()
	slices.Sort(out)
	return out
}

// Percentile returns the q-quantile (0..1) of sorted durations, 0 if none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// CDF returns a series of (latency in ms, fraction ≤ it) with at most
// points points.
func CDF(name string, sorted []time.Duration, points int) Series {
	s := Series{Name: name}
	if len(sorted) == 0 {
		return s
	}
	step := max(1, len(sorted)/points)
	for i := 0; i < len(sorted); i += step {
		s.X = append(s.X, ms(sorted[i]))
		s.Y = append(s.Y, float64(i+1)/float64(len(sorted)))
	}
	s.X = append(s.X, ms(sorted[len(sorted)-1]))
	s.Y = append(s.Y, 1)
	return s
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Ratio is a/b, or NaN when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// Usage is the process's CPU time and memory at one moment.
type Usage struct {
	At      time.Time
	CPU     time.Duration // user + system since the process started
	Heap    uint64        // bytes of heap in use
	RSS     uint64        // peak resident set size so far (the OS's maxrss)
	Routine int
}

// ReadUsage samples the process.
func ReadUsage() Usage {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := Usage{At: time.Now(), Heap: ms.HeapInuse, Routine: runtime.NumGoroutine()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.RSS = uint64(ru.Maxrss) << 10 // Linux reports KiB
	}
	return u
}

// CPUSince returns the CPU time used since u, as cores busy on average.
func (u Usage) CoresSince(then Usage) float64 {
	wall := u.At.Sub(then.At)
	if wall <= 0 {
		return 0
	}
	return float64(u.CPU-then.CPU) / float64(wall)
}
