package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDraws: a table row per run and a PNG that decodes.
func TestDraws(t *testing.T) {
	dir := t.TempDir()
	runs := []run{
		{K: 1, Agents: 200, RestartMS: 100, RolloutS: 25, FloorS: 20, MaxHeld: 1, ReqPerS: 150},
		{K: 1, Agents: 200, Killed: 20, RestartMS: 100, RolloutS: 70, FloorS: 20, MaxHeld: 1, TakenOver: 20, TakeoverMeanS: 2.3, TakeoverMaxS: 3},
		{K: 10, Agents: 200, RestartMS: 100, RolloutS: 3, FloorS: 2, MaxHeld: 10},
		{K: 10, Agents: 200, Killed: 20, RestartMS: 100, RolloutS: 8, FloorS: 2, MaxHeld: 10},
	}
	b, _ := json.Marshal(runs)
	in := filepath.Join(dir, "sim.json")
	os.WriteFile(in, b, 0o644)
	out := filepath.Join(dir, "plot.png")
	var table bytes.Buffer
	if err := run1(in, out, &table); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(table.String(), "\n| "); n != 4 {
		t.Errorf("%d table rows, want 4:\n%s", n, table.String())
	}
	if !strings.Contains(table.String(), "| 1 | 200 | 20 | 70.0 | 20.0 | 3.50 | 0.0 | 1 |") {
		t.Errorf("table:\n%s", table.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 400 {
		t.Errorf("plot %d px wide", w)
	}
}
