package main

import "math"

// powerFit is t(n) = a + b·n^k fitted to measurements: a is what does not
// grow with n (the process start, reading the policy), k the exponent of
// what does. Linear growth is k = 1.
type powerFit struct {
	a, b, k float64
	// r2 is the coefficient of determination of the fit.
	r2 float64
}

func (f powerFit) at(n float64) float64 { return f.a + f.b*math.Pow(n, f.k) }

// fitPower fits t = a + b·n^k by least squares: for each k on a fine grid,
// a and b are the linear least-squares solution (with a, b ≥ 0); the k
// with the smallest residual wins. Relative errors are minimised (each
// point weighted by 1/t²), so that the small sizes count as much as the
// large ones.
func fitPower(ns, ts []float64) powerFit {
	best := powerFit{r2: math.Inf(-1)}
	bestSSE := math.Inf(1)
	for k := 0.2; k <= 3.0+1e-9; k += 0.001 {
		a, b := weightedLine(ns, ts, k)
		var sse float64
		for i := range ns {
			e := (ts[i] - (a + b*math.Pow(ns[i], k))) / ts[i]
			sse += e * e
		}
		if sse < bestSSE {
			bestSSE = sse
			best = powerFit{a: a, b: b, k: k}
		}
	}
	var mean, sst, sse float64
	for _, t := range ts {
		mean += t / float64(len(ts))
	}
	for i := range ts {
		sst += (ts[i] - mean) * (ts[i] - mean)
		sse += (ts[i] - best.at(ns[i])) * (ts[i] - best.at(ns[i]))
	}
	best.r2 = 1 - sse/sst
	return best
}

// weightedLine solves t ≈ a + b·x with x = n^k, weights 1/t², a and b
// clamped at 0.
func weightedLine(ns, ts []float64, k float64) (a, b float64) {
	var sw, sx, sy, sxx, sxy float64
	for i := range ns {
		w := 1 / (ts[i] * ts[i])
		x := math.Pow(ns[i], k)
		sw += w
		sx += w * x
		sy += w * ts[i]
		sxx += w * x * x
		sxy += w * x * ts[i]
	}
	det := sw*sxx - sx*sx
	if det == 0 {
		return sy / sw, 0
	}
	a = (sxx*sy - sx*sxy) / det
	b = (sw*sxy - sx*sy) / det
	switch {
	case b < 0:
		return sy / sw, 0
	case a < 0:
		return 0, sxy / sxx
	}
	return a, b
}
