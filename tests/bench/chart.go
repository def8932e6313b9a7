package bench

import (
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chart draws latency.png: one panel per workload and mode, one group of
// bars (p50, p90, p99) per measured path.
func (rep *Report) chart(file string) error {
	type cellKey struct {
		w Workload
		m Mode
	}
	var order []cellKey
	byCell := map[cellKey][]Result{}
	for _, r := range rep.Results {
		k := cellKey{r.Workload, r.Mode}
		if _, ok := byCell[k]; !ok {
			order = append(order, k)
		}
		if r.NA == "" {
			byCell[k] = append(byCell[k], r)
		}
	}
	if len(order) == 0 {
		return nil
	}
	cols := min(len(order), 2)
	rows := (len(order) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	colors := []color.Color{
		color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff},
		color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff},
		color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff},
	}
	for i, k := range order {
		rs := byCell[k]
		p := plot.New()
		p.Title.Text = string(k.w) + " / " + string(k.m)
		p.Y.Label.Text = "latency (ms)"
		p.Legend.Top = true
		var names []string
		for _, r := range rs {
			names = append(names, r.Path)
		}
		w := vg.Points(10)
		for qi, q := range []struct {
			name string
			get  func(Result) float64
		}{
			{"p50", func(r Result) float64 { return r.P50Ms }},
			{"p90", func(r Result) float64 { return r.P90Ms }},
			{"p99", func(r Result) float64 { return r.P99Ms }},
		} {
			vals := make(plotter.Values, len(rs))
			for j, r := range rs {
				vals[j] = q.get(r)
			}
			if len(vals) == 0 {
				continue
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return err
			}
			bars.Color = colors[qi]
			bars.LineStyle.Width = 0
			bars.Offset = vg.Length(qi-1) * w
			p.Add(bars)
			p.Legend.Add(q.name, bars)
		}
		p.NominalX(names...)
		p.X.Tick.Label.Font.Size = vg.Points(7)
		plots[i/cols][i%cols] = p
	}
	img := vgimg.New(vg.Points(float64(420*cols)), vg.Points(float64(260*rows)))
	dc := draw.New(img)
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, t, dc)
	for j := range rows {
		for i := range cols {
			if plots[j][i] != nil {
				plots[j][i].Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}
