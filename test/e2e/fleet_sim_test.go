//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/kube"
)

// The fleet simulation: N node agents (goroutines, each with its own
// connection to the real API server and the project's own budget code)
// roll out one policy with K slots. Each holds its slot for a fake restart
// of a fixed, measured time. Then the same with 10% of the agents killed
// right after they take their slot: they never renew nor release, and the
// others must take their slots over when the leases expire.
//
// make test runs 200 agents; make fleet-bench runs 1,000
// (RUNTIMECLASSD_FLEET_AGENTS) and writes the figures as JSON
// (RUNTIMECLASSD_FLEET_OUT) for tools/fleetsim, which plots them.

// simRun is one rollout's figures.
type simRun struct {
	K             int     `json:"k"`
	Agents        int     `json:"agents"`
	Killed        int     `json:"killed"`
	RestartMS     float64 `json:"restart_ms"`      // the fake restart, as measured (mean)
	LeaseS        float64 `json:"lease_s"`         // lease duration
	PollS         float64 `json:"poll_s"`          // mean poll interval while waiting
	RolloutS      float64 `json:"rollout_s"`       // first start to the last alive agent's release
	FloorS        float64 `json:"floor_s"`         // N/K × restart
	FloorDeathsS  float64 `json:"floor_deaths_s"`  // ((N-killed) × restart + killed × lease) / K
	MaxHeld       int     `json:"max_held"`        // most slots held at once (dead holders count until taken over)
	Requests      float64 `json:"requests"`        // apiserver_request_total during the run
	ReqPerS       float64 `json:"req_per_s"`       // at the server
	Throttled     float64 `json:"throttled"`       // answers 429
	APIServerCPU  float64 `json:"apiserver_cpu"`   // cores, mean over the run
	EtcdCPU       float64 `json:"etcd_cpu"`        // cores
	TakeoverMeanS float64 `json:"takeover_mean_s"` // death to takeover, mean
	TakeoverMaxS  float64 `json:"takeover_max_s"`
	TakenOver     int     `json:"taken_over"`   // dead holders' slots taken over
	NotReleased   int     `json:"not_released"` // releases that failed (the slot expired instead)
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestFleetSimulation(t *testing.T) {
	agents := envInt("RUNTIMECLASSD_FLEET_AGENTS", 200)
	full := agents >= 1000
	if !full {
		// In make test it shares the machine with the other e2e tests; in
		// make fleet-bench it runs alone, for clean figures.
		t.Parallel()
	}
	var ks []int
	for _, s := range strings.Split(envOr("RUNTIMECLASSD_FLEET_K", "1,10,50"), ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k <= 0 {
			t.Fatalf("RUNTIMECLASSD_FLEET_K: %q", s)
		}
		ks = append(ks, k)
	}
	// A containerd restart until its CRI answers again takes 65-110 ms on
	// this kind of machine (TESTING.md); the lease and poll interval are
	// the production defaults (30 s, 5 s) scaled to it.
	restart := envDuration("RUNTIMECLASSD_FLEET_RESTART", 100*time.Millisecond)
	lease := envDuration("RUNTIMECLASSD_FLEET_LEASE", 2*time.Second)
	poll := envDuration("RUNTIMECLASSD_FLEET_POLL", time.Second)

	c := startCluster(t)
	conf := c.applyFleetRBAC()
	cfg, err := kube.LoadKubeconfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	api, etcd := c.proc("kube-apiserver"), c.proc("etcd")
	var runs []simRun
	for _, k := range ks {
		for _, kill := range []bool{false, true} {
			r := simulate(t, c, cfg, simParams{agents: agents, k: k, kill: kill, restart: restart, lease: lease, poll: poll, api: api, etcd: etcd})
			runs = append(runs, r)
			t.Logf("K=%d agents=%d killed=%d: rollout %.1fs (floor N/K×restart %.1fs, ×%.2f; with the deaths' leases %.1fs), max held %d, %.0f requests (%.0f/s, %0.f throttled), apiserver %.2f cores, etcd %.2f cores, takeover after death mean %.2fs max %.2fs (%d), %d releases failed",
				r.K, r.Agents, r.Killed, r.RolloutS, r.FloorS, r.RolloutS/r.FloorS, r.FloorDeathsS, r.MaxHeld, r.Requests, r.ReqPerS, r.Throttled,
				r.APIServerCPU, r.EtcdCPU, r.TakeoverMeanS, r.TakeoverMaxS, r.TakenOver, r.NotReleased)
			if r.MaxHeld > k {
				t.Errorf("K=%d: %d slots held at once", k, r.MaxHeld)
			}
		}
	}
	if out := os.Getenv("RUNTIMECLASSD_FLEET_OUT"); out != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// proc returns the running control-plane process of that name.
func (c *cluster) proc(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	c.t.Fatalf("no process %s", name)
	return nil
}

type simParams struct {
	agents, k            int
	kill                 bool
	restart, lease, poll time.Duration
	api, etcd            *process
}

// hold is one agent's time with a slot: from Acquire's return to the call
// of Release, or, for a killed agent, from the write that took the slot to
// the return of the Acquire that took it over.
type hold struct {
	slot       string
	start, end time.Time
	acquired   time.Time // Slot.Acquired: just before the write that took it
	dead       bool
}

func simulate(t *testing.T, c *cluster, cfg *kube.Config, p simParams) simRun {
	t.Helper()
	c.mustKubectl("-n", fleetNS, "delete", "leases", "--all")
	killed := map[int]bool{}
	if p.kill {
		for _, i := range rand.Perm(p.agents)[:p.agents/10] {
			killed[i] = true
		}
	}
	budgets := make([]*kube.Budget, p.agents)
	for i := range budgets {
		client, err := kube.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		budgets[i], err = kube.NewBudget(client, kube.BudgetConfig{Namespace: fleetNS, Node: fmt.Sprintf("sim-%04d", i),
			Slots: p.k, LeaseDuration: p.lease, PollInterval: p.poll})
		if err != nil {
			t.Fatal(err)
		}
	}
	reqBefore, throttledBefore := c.requestCounts()
	apiBefore, etcdBefore := cpuTicks(p.api), cpuTicks(p.etcd)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var mu sync.Mutex
	holds := make([]hold, 0, p.agents)
	var restartTotal, releaseFailures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range budgets {
		wg.Go(func() {
			actx, die := context.WithCancel(ctx)
			defer die()
			s, err := b.Acquire(actx)
			if err != nil {
				t.Errorf("agent %d: %v", i, err)
				return
			}
			h := hold{slot: s.Name, start: time.Now(), acquired: s.Acquired}
			if killed[i] {
				// Dies holding the slot: no renewal, no release.
				die()
				h.dead, h.start = true, s.Acquired
			} else {
				rs := time.Now()
				time.Sleep(p.restart)
				restartTotal.Add(int64(time.Since(rs)))
				h.end = time.Now()
				if err := s.Release(ctx); err != nil {
					// Not a fault of the budget: the slot expires.
					t.Logf("agent %d: %v", i, err)
					releaseFailures.Add(1)
				}
			}
			mu.Lock()
			holds = append(holds, h)
			mu.Unlock()
		})
	}
	wg.Wait()
	rollout := time.Since(start)
	apiAfter, etcdAfter := cpuTicks(p.api), cpuTicks(p.etcd)
	reqAfter, throttledAfter := c.requestCounts()

	alive := p.agents - len(killed)
	meanRestart := time.Duration(restartTotal.Load() / int64(max(alive, 1)))
	// A dead holder holds its slot until the next agent takes that slot.
	slices.SortFunc(holds, func(a, b hold) int { return a.start.Compare(b.start) })
	var takeovers []time.Duration
	for i := range holds {
		if !holds[i].dead {
			continue
		}
		holds[i].end = start.Add(rollout) // never taken over: held to the end
		for j := i + 1; j < len(holds); j++ {
			if holds[j].slot == holds[i].slot {
				holds[i].end = holds[j].start
				takeovers = append(takeovers, holds[j].acquired.Sub(holds[i].acquired))
				break
			}
		}
	}
	r := simRun{K: p.k, Agents: p.agents, Killed: len(killed), RestartMS: float64(meanRestart) / 1e6,
		LeaseS: p.lease.Seconds(), PollS: p.poll.Seconds(), RolloutS: rollout.Seconds(),
		FloorS:       float64(p.agents) / float64(p.k) * meanRestart.Seconds(),
		FloorDeathsS: (float64(alive)*meanRestart.Seconds() + float64(len(killed))*p.lease.Seconds()) / float64(p.k),
		MaxHeld:      maxOverlap(holds),
		Requests:     reqAfter - reqBefore,
		Throttled:    throttledAfter - throttledBefore,
		TakenOver:    len(takeovers),
		NotReleased:  int(releaseFailures.Load()),
	}
	r.ReqPerS = r.Requests / r.RolloutS
	r.APIServerCPU = float64(apiAfter-apiBefore) / clockTicks / r.RolloutS
	r.EtcdCPU = float64(etcdAfter-etcdBefore) / clockTicks / r.RolloutS
	if len(takeovers) > 0 {
		var sum time.Duration
		for _, d := range takeovers {
			sum += d
			r.TakeoverMaxS = max(r.TakeoverMaxS, d.Seconds())
			if d < p.lease {
				t.Errorf("K=%d: a dead holder's slot taken over %v after the holder's last write, before its %v lease expired", p.k, d, p.lease)
			}
		}
		r.TakeoverMeanS = (sum / time.Duration(len(takeovers))).Seconds()
	}
	return r
}

// maxOverlap is the largest number of holds at one moment.
func maxOverlap(holds []hold) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, h := range holds {
		edges = append(edges, edge{h.start, 1}, edge{h.end, -1})
	}
	// At equal times an end comes before a start: a release then a take.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTicks = 100

// cpuTicks is a process's user+system CPU time in clock ticks.
func cpuTicks(p *process) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// requestCounts sums the API server's apiserver_request_total, and the
// part answered 429 (throttled by priority and fairness).
func (c *cluster) requestCounts() (total, throttled float64) {
	c.t.Helper()
	resp, err := c.client.Get(c.server + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		total += v
		if strings.Contains(line, `code="429"`) {
			throttled += v
		}
	}
	return total, throttled
}
