//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fleet with real daemons: three nspawn nodes run the installed
// package's daemon with fleet_kubeconfig against a real API server, with
// real containerd restarts over D-Bus, real verification, smoke tests and a
// real rollback (issue 14).

// fleetPolicy is a handler every node can run: runc under another name.
const fleetPolicy = "[handlers.e2e]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.e2e.options]\nBinaryName = \"/usr/sbin/runc\"\n"

// brokenPolicy makes containerd's CRI plugin fail to load (its base spec
// is not JSON): written, restarted, not verified, rolled back.
const brokenPolicy = "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = \"/etc/containerd/bad-spec.json\"\n"

// jentry is one journal entry of a node.
type jentry struct {
	at   time.Time
	pid1 bool // logged by the node's systemd
	msg  string
}

// journalSince is the node's journal of runtimeclassd and of systemd about
// containerd since t0, in order.
func (n *node) journalSince(t0 time.Time) []jentry {
	n.t.Helper()
	out := n.mustSh("journalctl -b --no-pager -o json --output-fields=MESSAGE,_PID _PID=1 UNIT=containerd.service + _SYSTEMD_UNIT=runtimeclassd.service")
	var es []jentry
	for _, l := range strings.Split(out, "\n") {
		var e struct {
			At  string `json:"__REALTIME_TIMESTAMP"`
			Msg any    `json:"MESSAGE"`
			PID string `json:"_PID"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		us, err := strconv.ParseInt(e.At, 10, 64)
		msg, ok := e.Msg.(string)
		if err != nil || !ok {
			continue
		}
		if at := time.UnixMicro(us); !at.Before(t0) {
			es = append(es, jentry{at: at, pid1: e.PID == "1", msg: msg})
		}
	}
	return es
}

// first is the time of the first entry at or after from that matches.
func first(es []jentry, from time.Time, match func(jentry) bool) (time.Time, bool) {
	for _, e := range es {
		if !e.at.Before(from) && match(e) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

func daemonMsg(text string) func(jentry) bool {
	return func(e jentry) bool { return !e.pid1 && strings.Contains(e.msg, text) }
}

func systemdMsg(prefix string) func(jentry) bool {
	return func(e jentry) bool { return e.pid1 && strings.HasPrefix(e.msg, prefix) }
}

// restartWindow is one node's turn: the slot taken, containerd stopped and
// started, the handlers verified and smoke-tested, the slot given back.
type restartWindow struct {
	node                                               string
	acquired, stopping, started, verified, smoked, rel time.Time
	starts                                             int // containerd starts in the window's journal
}

func (n *node) restartWindow(t0 time.Time, handler string) (restartWindow, error) {
	es := n.journalSince(t0)
	w := restartWindow{node: n.name}
	steps := []struct {
		name  string
		dst   *time.Time
		match func(jentry) bool
	}{
		{"slot acquired", &w.acquired, daemonMsg(`msg="restart slot acquired"`)},
		{"containerd stopping", &w.stopping, systemdMsg("Stopping containerd")},
		{"containerd started", &w.started, systemdMsg("Started containerd")},
		{"verified", &w.verified, daemonMsg(`msg="containerd restarted and verified"`)},
		{"smoke test passed", &w.smoked, func(e jentry) bool {
			return daemonMsg(`msg="smoke test passed`)(e) && strings.Contains(e.msg, "handler="+handler+" ")
		}},
		{"slot released", &w.rel, daemonMsg(`msg="restart slot released"`)},
	}
	from := t0
	for _, s := range steps {
		at, ok := first(es, from, s.match)
		if !ok {
			return w, fmt.Errorf("%s: no %q in the journal since %s", n.name, s.name, t0.Format(time.StampMicro))
		}
		*s.dst, from = at, at
	}
	for _, e := range es {
		if systemdMsg("Started containerd")(e) {
			w.starts++
		}
	}
	return w, nil
}

// leaseEvent is a change of one of the fleet's Leases as the API server's
// watch saw it: a slot (its holder) or a node's own Lease (its state).
type leaseEvent struct {
	name, role, holder, state string
	transitions               int
}

// watchLeases watches the fleet's Leases as the admin until the test
// ends, and returns what it has seen so far.
func (c *cluster) watchLeases(t *testing.T) func() []leaseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", c.server+"/apis/coordination.k8s.io/v1/namespaces/"+fleetNS+"/leases?watch=true", nil)
	client := *c.client
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("watching the fleet's Leases: %s", resp.Status)
	}
	var mu sync.Mutex
	var seen []leaseEvent
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Metadata struct {
						Name   string            `json:"name"`
						Labels map[string]string `json:"labels"`
					} `json:"metadata"`
					Spec struct {
						Holder      string `json:"holderIdentity"`
						Transitions int    `json:"leaseTransitions"`
					} `json:"spec"`
				} `json:"object"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type == "BOOKMARK" || ev.Type == "ERROR" {
				continue
			}
			o := ev.Object
			mu.Lock()
			seen = append(seen, leaseEvent{o.Metadata.Name, o.Metadata.Labels["runtimeclassd.io/role"], o.Spec.Holder,
				o.Metadata.Labels["runtimeclassd.io/state"], o.Spec.Transitions})
			mu.Unlock()
		}
	}()
	return func() []leaseEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// holders is the sequence of a slot's holders, renewals folded ("" while
// free).
func holders(evs []leaseEvent) []string {
	var hs []string
	for _, e := range evs {
		// A slot's holder is NAME@MACHINE-ID (kube.BudgetConfig.Identity).
		h, _, _ := strings.Cut(e.holder, "@")
		if e.role == "slot" && (len(hs) == 0 || hs[len(hs)-1] != h) {
			hs = append(hs, h)
		}
	}
	return hs
}

// kubeRequests is the daemon's count of requests to the API server with its
// fleet credential.
func (n *node) kubeRequests() int {
	v, _ := strconv.Atoi(sample(n.metrics(), `runtimeclassd_kube_api_requests_total{client="fleet"}`))
	return v
}

// TestFleetDaemons: three real daemons with fleet_kubeconfig get the same
// policy at once and restart containerd one after the other (budget 1),
// each once; a policy that rolled back on one node is held on the others,
// which write nothing; `runtimeclassd fleet status` lists it and `fleet
// clear` forgets it.
func TestFleetDaemons(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := startCluster(t)
	c.applyFleetRBAC()
	names := []string{"fleet-1", "fleet-2", "fleet-3"}
	var nodes []*node
	for _, name := range names {
		// Each node's own certificate, in the group the manifest binds.
		conf, err := os.ReadFile(c.userKubeconfig("runtimeclassd:node:"+name, "runtimeclassd:nodes"))
		if err != nil {
			t.Fatal(err)
		}
		n := bootNodeWith(t, name, 1, nodeOptions{prepare: func(n *node) {
			n.writeFile("/etc/runtimeclassd/fleet.conf", string(conf), 0o600)
			n.armBrokenSpec()
		}})
		// bootNodeWith's settings, and the fleet. There is no Node object
		// and no kubelet.conf: node_kubeconfig's default file is absent,
		// so the daemon sets no labels and says so.
		settings := string(n.readFile("/etc/runtimeclassd/config.toml"))
		if !strings.Contains(settings, "restart_min_interval") {
			t.Fatalf("%s: config.toml lacks the test settings:\n%s", name, settings)
		}
		settings += "fleet_kubeconfig = \"/etc/runtimeclassd/fleet.conf\"\nmax_concurrent_restarts = 1\n"
		if name != "fleet-3" {
			// fleet-3 goes by its host name, node_name's default for a
			// credential that is not a kubelet's.
			settings += fmt.Sprintf("node_name = %q\n", name)
		}
		n.writeFile("/etc/runtimeclassd/config.toml", settings, 0o644)
		n.mustSh("systemctl restart runtimeclassd")
		n.waitFor("the daemon in the fleet", 30*time.Second, func() error {
			out, _ := n.sh("journalctl -b --no-pager -o cat -u runtimeclassd | grep 'fleet coordination on'")
			if !strings.Contains(out, "node="+name) {
				return errNotYet(out)
			}
			_, err := n.sh("systemctl is-active runtimeclassd")
			return err
		})
		nodes = append(nodes, n)
	}
	t.Logf("control plane and 3 nodes up in %v", time.Since(begin).Round(time.Second))
	leases := c.watchLeases(t)

	// 1. The same good policy on the three nodes at once.
	before, requests := map[string]int{}, map[string]int{}
	for _, n := range nodes {
		before[n.name] = n.containerdStarts()
		requests[n.name] = n.kubeRequests()
	}
	t0 := time.Now()
	for _, n := range nodes {
		n.writeFile("/etc/runtimeclassd/policy.d/10-e2e.toml", fleetPolicy, 0o644)
	}
	windows := make([]restartWindow, len(nodes))
	for i, n := range nodes {
		n.waitFor("the policy applied, verified, smoke-tested and the slot released", 3*time.Minute, func() error {
			w, err := n.restartWindow(t0, "e2e")
			windows[i] = w
			return err
		})
	}
	rollout := time.Since(t0)
	for i, n := range nodes {
		if s := n.status(); !strings.Contains(s, "applied (run,") {
			t.Errorf("%s: status after the rollout:\n%s", n.name, s)
		}
		if got := n.containerdStarts() - before[n.name]; got != 1 || windows[i].starts != 1 {
			t.Errorf("%s: containerd started %d times (journal since the drop: %d), want once", n.name, got, windows[i].starts)
		}
	}
	slices.SortFunc(windows, func(a, b restartWindow) int { return a.acquired.Compare(b.acquired) })
	for i, w := range windows {
		if !(w.acquired.Before(w.stopping) && w.started.Before(w.verified) && !w.smoked.Before(w.verified) && !w.rel.Before(w.smoked)) {
			t.Errorf("%s: steps out of order: %+v", w.node, w)
		}
		t.Logf("%s: slot taken %s, containerd stopping +%v, started +%v, verified +%v, smoke test passed +%v, slot released +%v",
			w.node, w.acquired.Format("15:04:05.000000"), w.stopping.Sub(w.acquired).Round(time.Millisecond),
			w.started.Sub(w.acquired).Round(time.Millisecond), w.verified.Sub(w.acquired).Round(time.Millisecond),
			w.smoked.Sub(w.acquired).Round(time.Millisecond), w.rel.Sub(w.acquired).Round(time.Millisecond))
		if i > 0 {
			prev := windows[i-1]
			if !w.acquired.After(prev.rel) {
				t.Errorf("restart windows overlap: %s took the slot at %s, before %s released it at %s",
					w.node, w.acquired.Format(time.StampMicro), prev.node, prev.rel.Format(time.StampMicro))
			} else {
				t.Logf("  gap after %s: %v (from its slot release to %s taking the slot)", prev.node, w.acquired.Sub(prev.rel).Round(time.Millisecond), w.node)
			}
		}
	}
	first, last := windows[0], windows[len(windows)-1]
	t.Logf("rollout: policy dropped on 3 nodes at once; containerd down-to-up on all 3 one after the other; "+
		"%v from the drop to the last smoke test, %v from the first slot taken to the last released (restarts alone: %v, %v, %v)",
		last.smoked.Sub(t0).Round(time.Millisecond), last.rel.Sub(first.acquired).Round(time.Millisecond),
		windows[0].rel.Sub(windows[0].acquired).Round(time.Millisecond), windows[1].rel.Sub(windows[1].acquired).Round(time.Millisecond),
		windows[2].rel.Sub(windows[2].acquired).Round(time.Millisecond))
	t.Logf("rollout seen from the test (drop to all three journals complete): %v", rollout.Round(time.Millisecond))
	// The API server's own order: the one slot went from holder to free
	// to holder, never from one holder to another.
	waitUntil(t, "the slot free again in the watch", 30*time.Second, func() bool {
		hs := holders(leases())
		return len(hs) > 0 && hs[len(hs)-1] == ""
	})
	evs := leases()
	var got []string
	waited, state := map[string]bool{}, map[string]string{}
	for _, e := range evs {
		if e.role == "node" {
			waited[e.holder] = waited[e.holder] || e.state == "waiting"
			state[e.holder] = e.state
			continue
		}
		if e.name != "runtimeclassd-slot-0" {
			t.Errorf("a slot other than slot 0 with max_concurrent_restarts = 1: %+v", e)
		}
		if e.transitions != 0 {
			t.Errorf("a slot taken over from a live holder: %+v", e)
		}
	}
	hs := holders(evs)
	for _, h := range hs {
		if h != "" {
			got = append(got, h)
		}
	}
	for i := 1; i < len(hs); i++ {
		if hs[i] != "" && hs[i-1] != "" {
			t.Errorf("the slot went from %s to %s without being released: %v", hs[i-1], hs[i], hs)
		}
	}
	want := []string{windows[0].node, windows[1].node, windows[2].node}
	if !slices.Equal(got, want) {
		t.Errorf("slot holders in the API server's order %v, want %v (the journals' order)", got, want)
	}
	t.Logf("slot 0 in the API server's watch: holders %q", hs)
	// The two that waited said so on their own Lease (what `fleet status`
	// lists), and say idle now.
	for _, w := range windows[1:] {
		if !waited[w.node] || state[w.node] != "idle" {
			t.Errorf("%s waited for the slot: its Lease said waiting %v, and says %q now (want idle)", w.node, waited[w.node], state[w.node])
		}
	}
	for _, n := range nodes {
		d := n.kubeRequests() - requests[n.name]
		t.Logf("%s: %d requests to the API server for the rollout (runtimeclassd_kube_api_requests_total{client=\"fleet\"})", n.name, d)
		if d <= 0 {
			t.Errorf("%s: runtimeclassd_kube_api_requests_total{client=\"fleet\"} did not grow: %d", n.name, d)
		}
		requests[n.name] = n.kubeRequests()
	}

	// 2. A policy that fails: rolled back on fleet-1, held on the others.
	n1 := nodes[0]
	before1 := n1.containerdStarts()
	t1 := time.Now()
	n1.writeFile("/etc/runtimeclassd/policy.d/20-broken.toml", brokenPolicy, 0o644)
	n1.waitFor("rolled back and recorded for the fleet", 2*time.Minute, func() error {
		out, _ := n1.sh("journalctl -b --no-pager -o cat -u runtimeclassd | grep 'recorded the policy as failed'")
		if out == "" || !strings.Contains(n1.status(), "rolled_back (run,") {
			return errNotYet(n1.status())
		}
		return nil
	})
	t.Logf("fleet-1: rolled back and recorded %v after the broken policy was dropped; containerd started %d times (apply and rollback)",
		time.Since(t1).Round(time.Millisecond), n1.containerdStarts()-before1)
	others := nodes[1:]
	cfgBefore := map[string]string{}
	startsBefore := map[string]int{}
	for _, n := range others {
		cfgBefore[n.name] = n.managed()
		startsBefore[n.name] = n.containerdStarts()
	}
	for _, n := range others {
		n.writeFile("/etc/runtimeclassd/policy.d/20-broken.toml", brokenPolicy, 0o644)
	}
	for _, n := range others {
		n.waitFor("the broken policy held", time.Minute, func() error {
			if s := n.status(); !strings.Contains(s, "held (run,") || !strings.Contains(s, "failed on fleet-1") {
				return errNotYet(s)
			}
			return nil
		})
		if got := n.managed(); got != cfgBefore[n.name] {
			t.Errorf("%s: containerd's config changed for a held policy:\n%s", n.name, got)
		}
		if got := n.containerdStarts(); got != startsBefore[n.name] {
			t.Errorf("%s: containerd restarted for a held policy (%d starts, was %d)", n.name, got, startsBefore[n.name])
		}
		if v := sample(n.metrics(), "runtimeclassd_policy_held"); v != "1" {
			t.Errorf("%s: runtimeclassd_policy_held %q, want 1", n.name, v)
		}
		st := n.status()
		t.Logf("%s: %s", n.name, grep(st, "failed on fleet-1"))
	}

	// 3. fleet status lists it; fleet clear forgets it, with a node's own
	// credential (fleet_kubeconfig from the daemon's config).
	n2 := nodes[1]
	status := n2.mustSh("runtimeclassd fleet status")
	var hash string
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) > 2 && len(f[0]) == 64 && f[1] == "fleet-1" {
			hash = f[0]
		}
	}
	if hash == "" || !strings.Contains(status, "1 failed policies") {
		t.Fatalf("fleet status does not list the policy that failed on fleet-1:\n%s", status)
	}
	t.Logf("runtimeclassd fleet status on fleet-2:\n%s", status)
	if out := n2.mustSh("runtimeclassd fleet clear " + hash[:12] + " 2>&1"); !strings.Contains(out, "cleared "+hash) {
		t.Errorf("fleet clear: %s", out)
	}
	status = n2.mustSh("runtimeclassd fleet status")
	if strings.Contains(status, hash) || !strings.Contains(status, "0 failed policies") {
		t.Errorf("fleet status after fleet clear:\n%s", status)
	}

	// Cleared, the policy is no longer held: at its next reconcile
	// (SIGHUP) fleet-2 tries it, rolls it back and records it as its own
	// failure; fleet-3 then holds it as failed on fleet-2.
	starts2 := n2.containerdStarts()
	n2.mustSh("systemctl reload runtimeclassd")
	n2.waitFor("fleet-2 rolled back the cleared policy and recorded it", 2*time.Minute, func() error {
		if s := n2.status(); !strings.Contains(s, "rolled_back (run,") {
			return errNotYet(s)
		}
		if st := n2.mustSh("runtimeclassd fleet status"); !strings.Contains(st, hash+"  fleet-2") {
			return errNotYet(st)
		}
		return nil
	})
	if got := n2.containerdStarts() - starts2; got != 2 {
		t.Errorf("fleet-2: containerd started %d times for the cleared policy, want 2 (apply, rollback)", got)
	}
	n3 := nodes[2]
	count := n3.reconciles()
	n3.mustSh("systemctl reload runtimeclassd")
	n3.waitReconciled(count)
	if s := n3.status(); !strings.Contains(s, "held (run,") || !strings.Contains(s, "failed on fleet-2") {
		t.Errorf("fleet-3 after fleet-2's failure:\n%s", s)
	}
	if got := n3.managed(); got != cfgBefore[n3.name] {
		t.Errorf("fleet-3: containerd's config changed for a held policy")
	}
	for _, n := range nodes {
		t.Logf("%s: %d more requests to the API server for the failing policy (held, cleared, tried, rolled back); %s", n.name,
			n.kubeRequests()-requests[n.name], strings.ReplaceAll(grep(n.metrics(), "runtimeclassd_fleet_"), "\n", ", "))
	}
	t.Logf("test took %v", time.Since(begin).Round(time.Second))
}
