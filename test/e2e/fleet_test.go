//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/kube"
)

// The Kubernetes side of runtimeclassd on the real API server: Node labels
// with a kubelet's credential under NodeRestriction, and the fleet's
// restart budget and failure record with the packaged RBAC.

const fleetNS = "runtimeclassd-fleet"

// kubeClient loads a kubeconfig and returns a client of it.
func kubeClient(t *testing.T, path string) (*kube.Client, *kube.Config) {
	t.Helper()
	cfg, err := kube.LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, cfg
}

// nodeLabels reads a Node's labels as the admin.
func (c *cluster) nodeLabels(name string) map[string]string {
	c.t.Helper()
	var n struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := c.get("/api/v1/nodes/"+name, &n); err != nil {
		c.t.Fatal(err)
	}
	return n.Metadata.Labels
}

// registerNode creates a Node with its kubelet's credential, as a kubelet
// registers itself, and returns that credential's kubeconfig.
func (c *cluster) registerNode(name string) string {
	c.t.Helper()
	conf := c.userKubeconfig("system:node:"+name, "system:nodes")
	if _, err := c.kubectlWith(conf, fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n    kubernetes.io/hostname: %s\n", name, name), "create", "-f", "-"); err != nil {
		c.t.Fatal(err)
	}
	return conf
}

// applyFleetRBAC applies packaging/rbac.yaml and returns a kubeconfig with
// the ServiceAccount's token, as docs/FLEET.md tells an operator to write.
func (c *cluster) applyFleetRBAC() string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(repoDir, "packaging/rbac.yaml"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.apply(string(b))
	var token string
	c.waitFor("the ServiceAccount's token", time.Minute, func() error {
		out, err := c.kubectl("-n", fleetNS, "get", "secret", "runtimeclassd-token", "-o", "jsonpath={.data.token}")
		if err != nil || out == "" {
			return fmt.Errorf("no token yet: %v", err)
		}
		t, err := base64.StdEncoding.DecodeString(out)
		token = string(t)
		return err
	})
	return c.writeFile("fleet.conf", []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: runtimeclassd
  user:
    token: %s
contexts:
- name: fleet
  context: {cluster: e2e, user: runtimeclassd, namespace: %s}
current-context: fleet
`, c.server, base64.StdEncoding.EncodeToString(c.ca.certPEM), token, fleetNS)))
}

// switchProxy forwards TCP connections to the API server while up, and
// refuses them (closes at once) while down: an API server that can't be
// reached, and then can.
type switchProxy struct {
	l    net.Listener
	up   atomic.Bool
	to   string
	mu   sync.Mutex
	open []net.Conn
}

func newSwitchProxy(t *testing.T, to string) *switchProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{l: l, to: strings.TrimPrefix(to, "https://")}
	t.Cleanup(func() { l.Close(); p.set(false) })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			if !p.up.Load() {
				conn.Close()
				continue
			}
			go p.forward(conn)
		}
	}()
	return p
}

func (p *switchProxy) url() string { return "https://" + p.l.Addr().String() }

func (p *switchProxy) forward(in net.Conn) {
	out, err := net.Dial("tcp", p.to)
	if err != nil {
		in.Close()
		return
	}
	p.mu.Lock()
	p.open = append(p.open, in, out)
	p.mu.Unlock()
	go func() { io.Copy(out, in); out.Close() }()
	io.Copy(in, out)
	in.Close()
}

// set turns the proxy on or off; off also cuts the open connections.
func (p *switchProxy) set(up bool) {
	p.up.Store(up)
	if !up {
		p.mu.Lock()
		for _, c := range p.open {
			c.Close()
		}
		p.open = nil
		p.mu.Unlock()
	}
}

// viaProxy is a copy of a kubeconfig whose server is the proxy.
func viaProxy(t *testing.T, c *cluster, conf string, p *switchProxy) string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	return c.writeFile(filepath.Base(conf)+".proxied", []byte(strings.Replace(string(b), c.server, p.url(), 1)))
}

// TestKubeLabels: runtimeclassd's Labeler with a kubelet's own credential
// sets and changes its runtimeclassd.io/handler.* labels on its own Node,
// turns those no policy names any more false, and touches no other label; NodeRestriction refuses it any other
// Node; an unchanged set costs no request; labels catch up after the API
// server comes back.
func TestKubeLabels(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	confA, _ := c.registerNode("worker-a"), c.registerNode("worker-b")
	c.mustKubectl("label", "node", "worker-a", "team=payments", "runtimeclassd.io/handler.old=true", "runtimeclassd.io/e2e=keep")

	client, cfg := kubeClient(t, confA)
	node, err := cfg.NodeName()
	if err != nil || node != "worker-a" {
		t.Fatalf("node name from the kubelet credential: %q, %v", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := kube.NewLabeler(client, node, kube.LabelerOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	go l.Run(ctx)
	flush := func(l *kube.Labeler) error {
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		defer fcancel()
		return l.Flush(fctx)
	}

	l.Sync(ctx, kube.HandlerLabels(map[string]bool{"crun": true, "kata": false}))
	if err := flush(l); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kubernetes.io/hostname":        "worker-a",
		"team":                          "payments",
		"runtimeclassd.io/e2e":          "keep",
		"runtimeclassd.io/handler.crun": "true",
		"runtimeclassd.io/handler.kata": "false",
		"runtimeclassd.io/handler.old":  "false", // ours, from no policy now: false
	}
	if got := c.nodeLabels("worker-a"); !maps.Equal(got, want) {
		t.Errorf("worker-a labels %v, want %v", got, want)
	}
	if n := client.Requests(); n != 2 {
		t.Errorf("first sync: %d requests, want 2 (read the Node, patch it)", n)
	}
	for range 10 {
		l.Sync(ctx, kube.HandlerLabels(map[string]bool{"crun": true, "kata": false}))
	}
	if err := flush(l); err != nil || client.Requests() != 2 {
		t.Errorf("ten unchanged syncs: %d requests in all, want still 2 (%v)", client.Requests(), err)
	}
	l.Sync(ctx, kube.HandlerLabels(map[string]bool{"crun": false}))
	if err := flush(l); err != nil {
		t.Fatal(err)
	}
	want["runtimeclassd.io/handler.crun"] = "false" // kata, no longer asked for, stays false
	if got := c.nodeLabels("worker-a"); !maps.Equal(got, want) {
		t.Errorf("worker-a labels %v, want %v", got, want)
	}
	t.Logf("Node labels: %d requests for three syncs that changed something and ten that didn't", client.Requests())

	// NodeRestriction: the same credential may not label another Node.
	other := kube.NewLabeler(client, "worker-b", kube.LabelerOptions{MinBackoff: time.Hour})
	go other.Run(ctx)
	other.Sync(ctx, kube.HandlerLabels(map[string]bool{"crun": true}))
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	err = other.Flush(fctx)
	fcancel()
	if kube.StatusCode(other.Err()) != http.StatusForbidden {
		t.Errorf("worker-a's credential labelling worker-b: %v (Flush: %v), want 403 Forbidden", other.Err(), err)
	}
	if got := c.nodeLabels("worker-b"); len(got) != 1 {
		t.Errorf("worker-b labels %v, want only its hostname", got)
	}

	// The API server can't be reached: Sync returns at once, the labeler
	// retries, and the labels arrive once it can be reached again.
	proxy := newSwitchProxy(t, c.server)
	pclient, _ := kubeClient(t, viaProxy(t, c, confA, proxy))
	pl := kube.NewLabeler(pclient, node, kube.LabelerOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	go pl.Run(ctx)
	start := time.Now()
	if err := pl.Sync(ctx, kube.HandlerLabels(map[string]bool{"crun": true, "gvisor": true})); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Sync took %v with the API server unreachable", d)
	}
	waitUntil(t, "a failed attempt", 30*time.Second, func() bool { return pl.Err() != nil })
	if !kube.Unreachable(pl.Err()) {
		t.Errorf("error with the API server unreachable: %v", pl.Err())
	}
	proxy.set(true)
	if err := flush(pl); err != nil {
		t.Fatal(err)
	}
	if got := c.nodeLabels("worker-a"); got["runtimeclassd.io/handler.gvisor"] != "true" || got["team"] != "payments" {
		t.Errorf("labels after the API server came back: %v", got)
	}
}

// forbidden reports whether kubectl failed because it was forbidden.
func forbidden(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "forbidden")
}

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agent is a node's daemon as far as the fleet sees it: a budget and the
// failure record, with its own connection to the API server.
type agent struct {
	name  string
	fleet *kube.Fleet
}

func newAgent(t *testing.T, conf, name string, k int, mod ...func(*kube.BudgetConfig)) *agent {
	t.Helper()
	client, _ := kubeClient(t, conf)
	cfg := kube.BudgetConfig{Namespace: fleetNS, Node: name, Slots: k, LeaseDuration: 2 * time.Second, PollInterval: 200 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := kube.NewBudget(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{name: name, fleet: &kube.Fleet{Budget: b, Failures: kube.NewFailures(client, fleetNS, nil), Node: name}}
}

// interval is a fake restart: when it began and ended.
type interval struct {
	node       string
	start, end time.Time
}

// rollout is what the daemon will do with a new policy hash: skip it if it
// failed elsewhere, take a slot, look again (it may have failed while this
// node waited), restart, and record a failure if verification fails.
func (a *agent) rollout(ctx context.Context, hash string, restart func() error) (held string, err error) {
	if node, _, held, err := a.fleet.Held(ctx, hash); err != nil || held {
		return node, err
	}
	release, err := a.fleet.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	if node, _, held, err := a.fleet.Held(ctx, hash); err != nil || held {
		return node, err
	}
	if err := restart(); err != nil {
		return "", a.fleet.Failed(ctx, hash, err.Error())
	}
	return "", nil
}

// TestFleetBudget: three nodes get the same policy at once with a budget
// of one: their restarts never overlap. A policy that fails on the first
// node is never applied on the other two, which report where it failed.
// A holder that dies loses its slot once its lease expires. With the API
// server unreachable, "wait" waits and "proceed" proceeds. The kubelet's
// credential can't touch the fleet's objects; the fleet's token can't
// touch a Node.
func TestFleetBudget(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	conf := c.applyFleetRBAC()
	ctx := context.Background()

	// Credentials: each may do its own job only.
	kubelet := c.registerNode("worker-a")
	if _, err := c.kubectlWith(kubelet, "", "-n", fleetNS, "get", "leases"); !forbidden(err) {
		t.Errorf("a kubelet credential listing the fleet's Leases: %v, want Forbidden", err)
	}
	if _, err := c.kubectlWith(conf, "", "label", "node", "worker-a", "runtimeclassd.io/handler.x=true"); !forbidden(err) {
		t.Errorf("the fleet token labelling a Node: %v, want Forbidden", err)
	}
	if _, err := c.kubectlWith(conf, "", "-n", fleetNS, "create", "configmap", "other"); !forbidden(err) {
		t.Errorf("the fleet token creating a ConfigMap: %v, want Forbidden", err)
	}

	// A client certificate of the node's own, in the group the manifest
	// binds, serves as well as the shared token (docs/FLEET.md, option 1).
	own := newAgent(t, c.userKubeconfig("runtimeclassd:node:node-9", "runtimeclassd:nodes"), "node-9", 1)
	release, err := own.fleet.Acquire(ctx)
	if err != nil {
		t.Fatalf("a per-node certificate in runtimeclassd:nodes: %v", err)
	}
	release()
	if _, _, _, err := own.fleet.Held(ctx, strings.Repeat("0", 64)); err != nil {
		t.Errorf("a per-node certificate reading the failure record: %v", err)
	}

	const restartTime = 300 * time.Millisecond
	agents := []*agent{newAgent(t, conf, "node-1", 1), newAgent(t, conf, "node-2", 1), newAgent(t, conf, "node-3", 1)}
	var mu sync.Mutex
	var restarts []interval
	fakeRestart := func(node string, fail bool) func() error {
		return func() error {
			iv := interval{node: node, start: time.Now()}
			time.Sleep(restartTime)
			iv.end = time.Now()
			mu.Lock()
			restarts = append(restarts, iv)
			mu.Unlock()
			if fail {
				return errors.New("containerd did not serve crun after the restart")
			}
			return nil
		}
	}
	runAll := func(hash string, fail bool) []string {
		held := make([]string, len(agents))
		var wg sync.WaitGroup
		for i, a := range agents {
			wg.Go(func() {
				var err error
				held[i], err = a.rollout(ctx, hash, fakeRestart(a.name, fail))
				if err != nil {
					t.Errorf("%s: %v", a.name, err)
				}
			})
		}
		wg.Wait()
		return held
	}

	good := strings.Repeat("a", 64)
	runAll(good, false)
	if len(restarts) != 3 {
		t.Fatalf("%d restarts of a good policy on 3 nodes", len(restarts))
	}
	slices.SortFunc(restarts, func(a, b interval) int { return a.start.Compare(b.start) })
	for i := 1; i < len(restarts); i++ {
		if restarts[i].start.Before(restarts[i-1].end) {
			t.Errorf("restarts overlap: %s %v-%v and %s %v-%v", restarts[i-1].node, restarts[i-1].start, restarts[i-1].end,
				restarts[i].node, restarts[i].start, restarts[i].end)
		}
	}
	t.Logf("budget 1: three restarts of %v, one after the other, %v from the first start to the last end",
		restartTime, restarts[2].end.Sub(restarts[0].start).Round(time.Millisecond))

	bad := strings.Repeat("b", 64)
	restarts = nil
	held := runAll(bad, true)
	if len(restarts) != 1 {
		t.Fatalf("a failing policy was applied on %d nodes, want 1", len(restarts))
	}
	first := restarts[0].node
	for i, a := range agents {
		switch {
		case a.name == first && held[i] != "":
			t.Errorf("%s, which applied the policy, reports it held by %s", a.name, held[i])
		case a.name != first && held[i] != first:
			t.Errorf("%s: held %q, want \"failed on %s\"", a.name, held[i], first)
		}
	}
	if node, reason, ok, err := agents[0].fleet.Held(ctx, bad); !ok || node != first || !strings.Contains(reason, "did not serve crun") || err != nil {
		t.Errorf("failure record: %q %q %v %v", node, reason, ok, err)
	}
	t.Logf("failing policy: applied on %s only; the others report it failed there", first)

	// fleet status, with a holder and a waiting node.
	rel, err := agents[0].fleet.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	waiting := make(chan error, 1)
	go func() { _, err := agents[1].fleet.Acquire(wctx); waiting <- err }()
	client, _ := kubeClient(t, conf)
	var st *kube.FleetStatus
	waitUntil(t, "node-2 listed as waiting", 30*time.Second, func() bool {
		st, err = kube.ReadStatus(ctx, client, fleetNS, time.Now())
		return err == nil && len(st.Waiting) == 1
	})
	var out strings.Builder
	st.WriteText(&out)
	for _, w := range []string{"runtimeclassd-slot-0  node-1", "node-2", "all restart slots are held (1)", bad + "  " + first} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("fleet status lacks %q:\n%s", w, out.String())
		}
	}
	t.Logf("fleet status:\n%s", out.String())
	wcancel()
	<-waiting
	rel()

	// `fleet clear`: the failure is forgotten.
	if err := agents[2].fleet.Failures.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := agents[1].fleet.Held(ctx, bad); ok {
		t.Error("the failed policy is still held after Clear")
	}

	// A holder dies (stops renewing, never releases): the slot is taken
	// over once a waiting node has seen no renewal for the lease duration.
	dctx, die := context.WithCancel(ctx)
	if _, err := agents[0].fleet.Budget.Acquire(dctx); err != nil {
		t.Fatal(err)
	}
	die()
	start := time.Now()
	rel, err = agents[1].fleet.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	rel()
	if took < 2*time.Second || took > 10*time.Second {
		t.Errorf("a dead holder's slot taken over after %v, want about its 2 s lease", took)
	}
	t.Logf("dead holder: slot taken over after %v (lease 2 s)", took.Round(time.Millisecond))

	// The API server can't be reached.
	proxy := newSwitchProxy(t, c.server)
	pconf := viaProxy(t, c, conf, proxy)
	w := newAgent(t, pconf, "node-w", 1)
	got := make(chan error, 1)
	go func() {
		release, err := w.fleet.Acquire(ctx)
		if err == nil {
			release()
		}
		got <- err
	}()
	waitUntil(t, "node-w waiting on an unreachable API server", 30*time.Second, func() bool {
		w, reason := w.fleet.Budget.Waiting()
		return w && strings.Contains(reason, "unreachable")
	})
	select {
	case err := <-got:
		t.Fatalf("on_api_unreachable=wait: Acquire returned with the API server unreachable: %v", err)
	default:
	}
	proxy.set(true)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no slot within 30 s of the API server coming back")
	}
	proxy.set(false)
	p := newAgent(t, pconf, "node-p", 1, func(c *kube.BudgetConfig) {
		c.OnUnreachable, c.ProceedAfter = kube.Proceed, time.Second
	})
	s, err := p.fleet.Budget.Acquire(ctx)
	if err != nil || !s.Unaccounted() {
		t.Fatalf("on_api_unreachable=proceed: %+v, %v", s, err)
	}
}
