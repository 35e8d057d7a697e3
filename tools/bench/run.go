package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// job is one command line to time as a whole process.
type job struct {
	name string
	argv []string
}

// timings are a job's runs, one per round, in round order.
type timings struct {
	wall, cpu []time.Duration
	faults    []int64
}

// interleave runs every job once per round, in a new random order each
// round, after warmup rounds that are not kept. Jobs compared with each
// other run next to each other in time, so that a machine shared with
// others slows them alike; a paired statistic (the ratio or difference
// within each round) then cancels most of that load.
func interleave(jobs []job, rounds, warmup int, seed uint64) (map[string]*timings, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	out := map[string]*timings{}
	for _, j := range jobs {
		out[j.name] = &timings{}
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	for r := 0; r < warmup+rounds; r++ {
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			wall, cpu, faults, err := runOnce(jobs[i], devnull)
			if err != nil {
				return nil, err
			}
			if r >= warmup {
				t := out[jobs[i].name]
				t.wall = append(t.wall, wall)
				t.cpu = append(t.cpu, cpu)
				t.faults = append(t.faults, faults)
			}
		}
	}
	return out, nil
}

// runOnce runs a job with its output discarded and returns its wall time,
// its CPU time (user and system) and its page faults.
func runOnce(j job, devnull *os.File) (wall, cpu time.Duration, faults int64, err error) {
	cmd := exec.Command(j.argv[0], j.argv[1:]...)
	cmd.Stdout, cmd.Stderr = devnull, devnull
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %v", j.name, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu, ru.Minflt + ru.Majflt, nil
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// percentile is the p-quantile of ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p+0.5)]
}

// pairedRatio is the median and the interquartile range, over rounds, of
// a's time divided by b's time in the same round.
func pairedRatio(a, b []time.Duration) (med, lo, hi float64) {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = float64(a[i]) / float64(b[i])
	}
	return quantile(r, 0.5), quantile(r, 0.25), quantile(r, 0.75)
}

// pairedDiff is the median and the interquartile range, over rounds, of
// a's time minus b's time in the same round.
func pairedDiff(a, b []time.Duration) (med, lo, hi time.Duration) {
	d := make([]time.Duration, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return percentile(d, 0.5), percentile(d, 0.25), percentile(d, 0.75)
}

func quantile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p+0.5)]
}

func medianInt(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
