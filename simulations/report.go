package simulations

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Report is what a scenario run produces: sections of text, tables and
// plots, written as Markdown with PNG files beside it.
type Report struct {
	Title    string
	Preamble []string // paragraphs before the sections (command, commit, machine)
	Sections []*Section
}

// Section is one part of a report.
type Section struct {
	Title  string
	Text   []string // paragraphs
	Tables []*Table
	Plots  []*Plot
	// Failures are checks the scenario demands that did not hold (an
	// attack that was accepted, say). A run with failures exits non-zero.
	Failures []string
}

// Table is a Markdown table.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// Add appends a row, formatting each cell with fmt.Sprint (floats with %.3g).
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		switch v := c.(type) {
		case float64:
			row[i] = fmt.Sprintf("%.3g", v)
		default:
			row[i] = fmt.Sprint(v)
		}
	}
	t.Rows = append(t.Rows, row)
}

// Plot is a line plot of one or more series, saved as a PNG.
type Plot struct {
	File   string // base name, e.g. "fleet-latency-cdf.png"
	Title  string
	XLabel string
	YLabel string
	LogX   bool
	Series []Series
}

// Series is one named line.
type Series struct {
	Name string
	X, Y []float64
}

// PlotDir is the folder, beside the report, that holds its PNG plots.
const PlotDir = "plots"

// Write writes the report as Markdown to dir/name and its plots as PNGs
// into dir/plots.
func (r *Report) Write(dir, name string) error {
	if err := os.MkdirAll(filepath.Join(dir, PlotDir), 0o755); err != nil {
		return err
	}
	for _, s := range r.Sections {
		for _, p := range s.Plots {
			if err := p.Save(filepath.Join(dir, PlotDir, p.File)); err != nil {
				return fmt.Errorf("plot %s: %w", p.File, err)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := r.Markdown(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Markdown writes the report's text, tables and plot links.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, p := range r.Preamble {
		fmt.Fprintf(&b, "%s\n\n", p)
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "## %s\n\n", s.Title)
		for _, p := range s.Text {
			fmt.Fprintf(&b, "%s\n\n", p)
		}
		for _, t := range s.Tables {
			t.markdown(&b)
		}
		for _, p := range s.Plots {
			fmt.Fprintf(&b, "![%s](%s/%s)\n\n", p.Title, PlotDir, p.File)
		}
		if len(s.Failures) > 0 {
			b.WriteString("**Failed checks:**\n\n")
			for _, f := range s.Failures {
				fmt.Fprintf(&b, "- %s\n", f)
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Failures returns every failed check of the report.
func (r *Report) Failures() []string {
	var out []string
	for _, s := range r.Sections {
		for _, f := range s.Failures {
			out = append(out, s.Title+": "+f)
		}
	}
	return out
}

func (t *Table) markdown(b *strings.Builder) {
	if t.Caption != "" {
		fmt.Fprintf(b, "%s\n\n", t.Caption)
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, h := range t.Header {
		fmt.Fprintf(b, " %s |", esc(h))
	}
	b.WriteString("\n|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("|")
		for _, c := range r {
			fmt.Fprintf(b, " %s |", esc(c))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// Save renders the plot to a PNG file.
func (p *Plot) Save(path string) error {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.X.Label.Text = p.XLabel
	pl.Y.Label.Text = p.YLabel
	if p.LogX {
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	pl.Legend.Top = true
	pl.Add(plotter.NewGrid())
	for i, s := range p.Series {
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if p.LogX && s.X[j] <= 0 {
				continue // a log axis cannot show it
			}
			pts = append(pts, plotter.XY{X: s.X[j], Y: s.Y[j]})
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		pl.Add(l)
		if len(pts) <= 12 { // a sweep: mark the measured points
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return err
			}
			sc.Color = plotutil.Color(i)
			sc.Shape = plotutil.Shape(i)
			pl.Add(sc)
		}
		pl.Legend.Add(s.Name, l)
	}
	pl.BackgroundColor = color.White
	return pl.Save(7*vg.Inch, 4*vg.Inch, path)
}
