package main

import (
	"math"
	"testing"
	"time"
)

// TestFitPowerRecoversExponent: the fit finds the exponent of synthetic
// data with a constant part and 2% noise, and tells linear from quadratic
// growth, which is what the scale figures claim.
func TestFitPowerRecoversExponent(t *testing.T) {
	t.Parallel()
	ns := []float64{1, 2, 5, 10, 20, 50, 100}
	noise := []float64{1.02, 0.98, 1.01, 0.99, 1.02, 0.985, 1.0}
	for _, k := range []float64{0.5, 1, 1.5, 2} {
		ts := make([]float64, len(ns))
		for i, n := range ns {
			ts[i] = (3 + 0.2*math.Pow(n, k)) * noise[i]
		}
		f := fitPower(ns, ts)
		if math.Abs(f.k-k) > 0.1 {
			t.Errorf("k = %v: fitted %v (a %.3f, b %.3f, R² %.4f)", k, f.k, f.a, f.b, f.r2)
		}
		if f.r2 < 0.99 {
			t.Errorf("k = %v: R² %v", k, f.r2)
		}
	}
}

func TestPairedStatistics(t *testing.T) {
	t.Parallel()
	a := durations(10, 12, 30, 11, 10)
	b := durations(20, 24, 60, 22, 20)
	if m, lo, hi := pairedRatio(a, b); m != 0.5 || lo != 0.5 || hi != 0.5 {
		t.Errorf("ratio %v [%v, %v], want 0.5", m, lo, hi)
	}
	if d, _, _ := pairedDiff(b, a); d != durations(11)[0] {
		t.Errorf("difference %v, want 11", d)
	}
}

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}
