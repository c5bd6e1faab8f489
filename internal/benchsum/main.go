// Command benchsum reads `go test -bench` output on stdin and prints a
// summary table: each ztmesh figure, the baseline it is measured against
// in the same run, and the ratio. Benchmarks that already report ratios
// (custom metrics ending in "-ratio", measured against a baseline inside
// the benchmark) are listed as they are. `make bench` pipes into it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// pairs maps "package short name/Benchmark" to its baseline in the same package.
var pairs = map[string]string{
	"did/IssueCredential":             "did/Ed25519SignBaseline",
	"did/VerifyCredential":            "did/Ed25519VerifyBaseline",
	"did/VerifyCredentialAgain":       "did/Ed25519VerifyBaseline",
	"policy/DecideCached":             "policy/OPAEvalBaseline",
	"policy/DecideUncached":           "policy/OPAEvalBaseline",
	"policy/DecideUncachedDenied":     "policy/OPAEvalBaseline",
	"attest/ParseEvidence":            "attest/Ed25519VerifyBaseline",
	"attest/Verify":                   "attest/Ed25519VerifyBaseline",
	"node/ConnectToVerified":          "node/ConnectBaseline",
	"node/GossipSubScore":             "node/GossipSubScoreBaseline",
	"pubsub/CostSign":                 "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostVerify":               "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostSeal":                 "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostOpen":                 "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostMemberSubject":        "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostPolicyDecideCached":   "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostPolicyDecideUncached": "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostReplayWindow":         "pubsub/CostEd25519VerifyBaseline",
	"pubsub/CostValidateZone":         "pubsub/CostEd25519VerifyBaseline",
}

type result struct {
	name    string
	metrics map[string]float64
}

func main() {
	results, order, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsum:", err)
		os.Exit(1)
	}
	write(os.Stdout, results, order)
}

// parse reads benchmark lines, keyed "pkg/Name[/sub]" without the -GOMAXPROCS suffix.
func parse(r io.Reader) (map[string]result, []string, error) {
	results := map[string]result{}
	var order []string
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndex(p, "/")+1:]
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		res := result{name: pkg + "/" + name, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			res.metrics[f[i+1]] = v
		}
		if _, dup := results[res.name]; !dup {
			order = append(order, res.name)
		}
		results[res.name] = res
	}
	return results, order, sc.Err()
}

func write(w io.Writer, results map[string]result, order []string) {
	fmt.Fprintln(w, "\n## ztmesh against its baselines (same run)")
	fmt.Fprintf(w, "\n| %-40s | %12s | %-36s | %12s | %7s |\n", "benchmark", "ns/op", "baseline", "ns/op", "ratio")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 42), strings.Repeat("-", 14), strings.Repeat("-", 38), strings.Repeat("-", 14), strings.Repeat("-", 9))
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, ok := results[k]
		b, okb := results[pairs[k]]
		if !ok || !okb {
			continue
		}
		x, y := r.metrics["ns/op"], b.metrics["ns/op"]
		if y == 0 {
			continue
		}
		fmt.Fprintf(w, "| %-40s | %12.0f | %-36s | %12.0f | %6.2fx |\n", k, x, pairs[k], y, x/y)
	}
	fmt.Fprintln(w, "\n## Ratios measured inside end-to-end benchmarks (ztmesh / plain GossipSub)")
	fmt.Fprintf(w, "\n| %-60s | %-28s | %8s |\n", "benchmark", "metric", "value")
	fmt.Fprintf(w, "|%s|%s|%s|\n", strings.Repeat("-", 62), strings.Repeat("-", 30), strings.Repeat("-", 10))
	for _, name := range order {
		r := results[name]
		var ms []string
		for m := range r.metrics {
			if strings.HasSuffix(m, "-ratio") && !strings.HasSuffix(m, "delivery-ratio") {
				ms = append(ms, m)
			}
		}
		sort.Strings(ms)
		for _, m := range ms {
			fmt.Fprintf(w, "| %-60s | %-28s | %7.2fx |\n", name, m, r.metrics[m])
		}
	}
}
