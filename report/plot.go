package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one curve of a CDF plot: a name for the legend and its values.
type Series struct {
	Name   string
	Values []float64
}

// cdfPoints returns the empirical CDF of xs as a step line's points.
func cdfPoints(xs []float64) plotter.XYs {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return nil
	}
	pts := make(plotter.XYs, 0, len(v)+1)
	pts = append(pts, plotter.XY{X: v[0], Y: 0})
	n := float64(len(v))
	for i, x := range v {
		pts = append(pts, plotter.XY{X: x, Y: float64(i+1) / n})
	}
	return pts
}

// WriteCDF writes a PNG of the empirical cumulative distributions of the
// series, one curve each, so that sessions (strategies) compare on one chart.
func WriteCDF(path, title, xlabel string, series []Series) error {
	curves := make([]Curve, len(series))
	for i, s := range series {
		pts := cdfPoints(s.Values)
		curves[i] = Curve{Name: s.Name, Points: pts, N: max(0, len(pts)-1)}
	}
	return WriteCDFCurves(path, title, xlabel, curves)
}

// Curve is one line of a plot given by its points: a CDF worked out by the
// caller (from a histogram, when the values are too many to hold), or a
// series over time. N, when positive, is the count the legend shows.
type Curve struct {
	Name   string
	N      int
	Points plotter.XYs
}

// WriteCDFCurves is WriteCDF for distributions given as points (x, fraction
// of values at or below x), drawn as steps.
func WriteCDFCurves(path, title, xlabel string, curves []Curve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "fraction of jobs"
	p.Y.Min, p.Y.Max = 0, 1
	if drawn, err := addCurves(p, curves, true); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	} else if drawn == 0 {
		p.Title.Text += " (no completed jobs)"
		p.X.Min, p.X.Max = 0, 1
	}
	return savePNG(path, 8*vg.Inch, 5*vg.Inch, func(dc draw.Canvas) { p.Draw(dc) })
}

// WriteLines writes a PNG of curves over x, such as each strategy's core
// utilisation over time.
func WriteLines(path, title, xlabel, ylabel string, curves []Curve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	if drawn, err := addCurves(p, curves, false); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	} else if drawn == 0 {
		p.Title.Text += " (no data)"
		p.X.Min, p.X.Max = 0, 1
	}
	return savePNG(path, 8*vg.Inch, 5*vg.Inch, func(dc draw.Canvas) { p.Draw(dc) })
}

func addCurves(p *plot.Plot, curves []Curve, steps bool) (drawn int, err error) {
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false
	for i, c := range curves {
		if len(c.Points) == 0 {
			continue
		}
		l, err := plotter.NewLine(c.Points)
		if err != nil {
			return drawn, err
		}
		if steps {
			l.StepStyle = plotter.PostStep
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i / 7)
		p.Add(l)
		name := c.Name
		if c.N > 0 {
			name = fmt.Sprintf("%s (n=%d)", c.Name, c.N)
		}
		p.Legend.Add(name, l)
		drawn++
	}
	return drawn, nil
}

// gridXYZ adapts a Grid to plotter.GridXYZ: columns on X (seconds from the
// window's start), workers on Y (worker r spans r-0.5 to r+0.5). Each cell
// is repeated sx times across and sy times up, so that the raster image
// is about the size it is drawn at and its scaling blurs only the cells'
// edges.
type gridXYZ struct {
	g      *Grid
	sx, sy int
}

func (x gridXYZ) Dims() (c, r int)   { return x.g.Columns() * x.sx, len(x.g.Nodes) * x.sy }
func (x gridXYZ) Z(c, r int) float64 { return x.g.Cells[r/x.sy][c/x.sx] }
func (x gridXYZ) X(c int) float64    { return (float64(c) + 0.5) * x.g.Bin / float64(x.sx) }
func (x gridXYZ) Y(r int) float64    { return (float64(r)+0.5)/float64(x.sy) - 0.5 }
func (x gridXYZ) Min() float64       { return 0 }
func (x gridXYZ) Max() float64       { return 1 }

// WriteHeatMap writes a PNG heat map of the grid: core utilisation per
// worker (Y) over time (X), with a colour bar of the busy-core ratio.
func WriteHeatMap(path, title string, g *Grid) error {
	if g == nil || len(g.Nodes) == 0 || g.Columns() == 0 {
		return fmt.Errorf("report: %s: no utilisation data to plot", path)
	}
	cm := moreland.ExtendedBlackBody()
	cm.SetMin(0)
	cm.SetMax(1)
	height := min(max(4*vg.Inch, vg.Length(len(g.Nodes))*0.15*vg.Inch+1.5*vg.Inch), 12*vg.Inch)
	const width, barWidth = 11 * vg.Inch, 1.1 * vg.Inch
	const dpi = 96 // vgimg's default
	sx := max(1, int(math.Ceil((width-barWidth).Dots(dpi)/float64(g.Columns()))))
	sy := max(1, int(math.Ceil(height.Dots(dpi)/float64(len(g.Nodes)))))
	h := plotter.NewHeatMap(gridXYZ{g: g, sx: sx, sy: sy}, cm.Palette(256))
	h.Rasterized = true
	h.NaN = color.RGBA{R: 0xdd, G: 0xdd, B: 0xdd, A: 0xff}
	h.Overflow = color.White
	h.Underflow = color.Black

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the experiment started"
	p.Y.Label.Text = fmt.Sprintf("worker (%d, sorted by id)", len(g.Nodes))
	p.Add(h)
	if len(g.Nodes) <= 40 {
		ticks := make([]plot.Tick, len(g.Nodes))
		for i, n := range g.Nodes {
			ticks[i] = plot.Tick{Value: float64(i), Label: n}
		}
		p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	}
	xmin, xmax, ymin, ymax := h.DataRange()
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = xmin, xmax, ymin, ymax

	bar := plot.New()
	bar.Title.Text = "busy cores"
	cb := &plotter.ColorBar{ColorMap: cm, Vertical: true}
	bar.Add(cb)
	bar.HideX()
	bar.Y.Padding = 0

	return savePNG(path, width, height, func(dc draw.Canvas) {
		p.Draw(draw.Crop(dc, 0, -barWidth, 0, 0))
		bar.Draw(draw.Crop(dc, width-barWidth+0.2*vg.Inch, 0, 0.4*vg.Inch, -0.05*vg.Inch))
	})
}

// savePNG draws onto a canvas of the given size and writes it as a PNG.
func savePNG(path string, w, h vg.Length, drawFn func(draw.Canvas)) (err error) {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawFn(dc)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("report: %w", cerr)
		}
	}()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return nil
}
