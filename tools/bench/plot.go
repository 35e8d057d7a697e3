package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a plot: measured points and their fit.
type series struct {
	label  string
	ns, ms []float64 // x, and the median time in ms
	fit    powerFit
}

// plotScale draws time against size on log-log axes: the measured medians
// as points, the fit as a line, its exponent in the legend.
func plotScale(path, title, xlabel string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "time (ms), whole process"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{}, plot.LogTicks{}
	p.Legend.Top, p.Legend.Left = true, true
	for i, s := range ss {
		pts := make(plotter.XYs, len(s.ns))
		for j := range s.ns {
			pts[j] = plotter.XY{X: s.ns[j], Y: s.ms[j]}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Radius = vg.Points(3)
		f := s.fit
		fn := plotter.NewFunction(func(x float64) float64 { return f.at(x) })
		fn.XMin, fn.XMax = s.ns[0], s.ns[len(s.ns)-1]
		fn.Samples = 200
		fn.Color = plotutil.Color(i)
		p.Add(sc, fn)
		p.Legend.Add(fmt.Sprintf("%s: %.2f ms + %.4f ms·n^%.2f", s.label, f.a, f.b, f.k), sc, fn)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
