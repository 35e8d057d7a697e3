//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/kube"
)

// TestFleetOutageLongerThanLease: the real API server becomes unreachable
// for twice the lease while a node holds the only slot and is restarting,
// and another node waits for it. When the API server is back, the waiter
// must not take the slot while the holder is still restarting (it used
// to, at its first look: a failed look counted as the holder's silence).
// Trials run ten at a time, each in a namespace of its own, behind one
// switchable proxy: 100 trials.
func TestFleetOutageLongerThanLease(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	proxy := newSwitchProxy(t, c.server)
	proxy.set(true)
	conf := viaProxy(t, c, c.admin, proxy)
	const (
		parallel = 10
		rounds   = 10
		lease    = time.Second
		outage   = 2 * lease
	)
	for i := range parallel {
		if _, err := c.kubectl("create", "namespace", fmt.Sprintf("outage-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	agent := func(ns, name string) *kube.Fleet {
		client, _ := kubeClient(t, conf)
		b, err := kube.NewBudget(client, kube.BudgetConfig{Namespace: ns, Node: name, Slots: 1, LeaseDuration: lease, PollInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return &kube.Fleet{Budget: b, Node: name}
	}
	overlaps, trials := 0, 0
	var lines []string
	for round := range rounds {
		type trial struct {
			holderEnd, waiterStart time.Time
			err                    error
		}
		res := make([]trial, parallel)
		holding := make(chan struct{}, parallel)
		up := make(chan struct{})
		var wg sync.WaitGroup
		for i := range parallel {
			ns := fmt.Sprintf("outage-%d", i)
			a, b := agent(ns, fmt.Sprintf("a-%d", round)), agent(ns, fmt.Sprintf("b-%d", round))
			wg.Go(func() {
				ctx := t.Context()
				release, err := a.Acquire(ctx)
				if err != nil {
					res[i].err = err
					holding <- struct{}{}
					return
				}
				if err := a.Ready(ctx); err != nil {
					res[i].err = err
				}
				// Waiting by now, and restarting: until a lease after the
				// API server is back.
				waiter := make(chan struct{})
				wg.Go(func() {
					close(waiter)
					rel, err := b.Acquire(ctx)
					if err != nil {
						res[i].err = err
						return
					}
					if err := b.Ready(ctx); err != nil {
						res[i].err = err
					}
					res[i].waiterStart = time.Now()
					rel()
				})
				<-waiter
				for w, _ := b.Budget.Waiting(); !w; w, _ = b.Budget.Waiting() {
					select {
					case <-ctx.Done():
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
				holding <- struct{}{}
				<-up
				time.Sleep(lease) // the rest of the restart
				res[i].holderEnd = time.Now()
				release()
			})
		}
		for range parallel {
			<-holding
		}
		proxy.set(false)
		time.Sleep(outage)
		proxy.set(true)
		close(up)
		wg.Wait()
		for i, r := range res {
			trials++
			switch {
			case r.err != nil:
				t.Errorf("round %d, trial %d: %v", round, i, r.err)
			case r.waiterStart.Before(r.holderEnd):
				overlaps++
				lines = append(lines, fmt.Sprintf("round %d, trial %d: the waiter restarted %v before the holder finished", round, i, r.holderEnd.Sub(r.waiterStart).Round(time.Millisecond)))
			}
		}
	}
	if overlaps > 0 {
		t.Errorf("%d of %d trials restarted two nodes at once with K = 1:\n%s", overlaps, trials, strings.Join(lines, "\n"))
	}
	t.Logf("API outage of %v against a lease of %v during a restart: %d overlaps beyond K in %d trials", outage, lease, overlaps, trials)
}
