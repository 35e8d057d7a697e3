// Command fleetsim draws the fleet simulation's figures: it reads the JSON
// that TestFleetSimulation writes (RUNTIMECLASSD_FLEET_OUT), plots rollout
// time against K as a PNG, and prints the figures as a Markdown table for
// docs/FLEET.md. A module of its own, so that gonum/plot stays out of
// runtimeclassd's go.mod.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// run is one rollout, as test/e2e/fleet_sim_test.go writes it.
type run struct {
	K             int     `json:"k"`
	Agents        int     `json:"agents"`
	Killed        int     `json:"killed"`
	RestartMS     float64 `json:"restart_ms"`
	LeaseS        float64 `json:"lease_s"`
	PollS         float64 `json:"poll_s"`
	RolloutS      float64 `json:"rollout_s"`
	FloorS        float64 `json:"floor_s"`
	FloorDeathsS  float64 `json:"floor_deaths_s"`
	MaxHeld       int     `json:"max_held"`
	Requests      float64 `json:"requests"`
	ReqPerS       float64 `json:"req_per_s"`
	Throttled     float64 `json:"throttled"`
	APIServerCPU  float64 `json:"apiserver_cpu"`
	EtcdCPU       float64 `json:"etcd_cpu"`
	TakeoverMeanS float64 `json:"takeover_mean_s"`
	TakeoverMaxS  float64 `json:"takeover_max_s"`
	TakenOver     int     `json:"taken_over"`
}

func main() {
	in := flag.String("in", "", "the simulation's JSON")
	png := flag.String("png", "", "where to write the plot")
	flag.Parse()
	if err := run1(*in, *png, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run1(in, png string, out io.Writer) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var runs []run
	if err := json.Unmarshal(b, &runs); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(runs) == 0 {
		return fmt.Errorf("%s: no runs", in)
	}
	table(out, runs)
	if png == "" {
		return nil
	}
	p, err := plotRollout(runs)
	if err != nil {
		return err
	}
	return p.Save(16*vg.Centimeter, 11*vg.Centimeter, png)
}

// table prints the figures as Markdown.
func table(w io.Writer, runs []run) {
	fmt.Fprintln(w, "| K | agents | killed | rollout (s) | floor N/K×restart (s) | ratio | floor with the deaths' leases (s) | max held | requests/s | 429s | apiserver CPU (cores) | etcd CPU (cores) | takeover after death (s, mean / max) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range runs {
		takeover := "-"
		if r.TakenOver > 0 {
			takeover = fmt.Sprintf("%.2f / %.2f (%d)", r.TakeoverMeanS, r.TakeoverMaxS, r.TakenOver)
		}
		fmt.Fprintf(w, "| %d | %d | %d | %.1f | %.1f | %.2f | %.1f | %d | %.0f | %.0f | %.2f | %.2f | %s |\n",
			r.K, r.Agents, r.Killed, r.RolloutS, r.FloorS, r.RolloutS/r.FloorS, r.FloorDeathsS, r.MaxHeld, r.ReqPerS, r.Throttled,
			r.APIServerCPU, r.EtcdCPU, takeover)
	}
}

// plotRollout draws rollout time against K on log-log axes: the clean
// rollouts, the ones with 10% of agents killed, and the floor.
func plotRollout(runs []run) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Rollout of %d agents (restart %.0f ms) against the budget K", runs[0].Agents, runs[0].RestartMS)
	p.X.Label.Text = "K (slots)"
	p.Y.Label.Text = "rollout time (s)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	var clean, killed, floor plotter.XYs
	for _, r := range runs {
		pt := plotter.XY{X: float64(r.K), Y: r.RolloutS}
		if r.Killed == 0 {
			clean = append(clean, pt)
			floor = append(floor, plotter.XY{X: float64(r.K), Y: r.FloorS})
		} else {
			killed = append(killed, pt)
		}
	}
	for _, s := range []plotter.XYs{clean, killed, floor} {
		slices.SortFunc(s, func(a, b plotter.XY) int { return int(a.X - b.X) })
	}
	for i, s := range []struct {
		name string
		xys  plotter.XYs
	}{{"rollout", clean}, {"rollout, 10% killed holding a slot", killed}, {"floor N/K × restart", floor}} {
		if len(s.xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil, err
		}
		l.Color = plotColors[i]
		pts.Color = plotColors[i]
		if i == 2 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	return p, nil
}
