// Package yamltime holds Duration, a time.Duration written in YAML files
// (ztmeshd's config, simulation scenarios) as Go writes durations: "10s",
// "1m30s", "250ms". It is not a JSON type: nothing on the wire uses it.
package yamltime

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "10s" in YAML. Convert with
// time.Duration(d) and Duration(d).
type Duration time.Duration

// UnmarshalYAML parses a duration as time.ParseDuration does; an error
// names the YAML line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration: write it like 10s, 1m30s or 2h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as time.Duration.String does ("1m30s").
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
