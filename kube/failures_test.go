package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func (f *fakeAPI) addFailureRecord() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cms[ns+"/"+FailuresConfigMap] = &configMap{Metadata: objectMeta{Name: FailuresConfigMap, Namespace: ns, ResourceVersion: f.nextRV()}}
}

const (
	hashA = "5f2b1c0e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"
	hashB = "0000000000000000000000000000000000000000000000000000000000000001"
)

// TestFailures: a failure recorded by one node is what another looks up;
// records that race are both kept; clear forgets one hash or all.
func TestFailures(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.addFailureRecord()
	clk := newFakeClock()
	ctx := context.Background()
	w1, w2 := NewFailures(f.client(t), ns, clk), NewFailures(f.client(t), ns, clk)

	if _, found, err := w2.Lookup(ctx, hashA); err != nil || found {
		t.Fatalf("Lookup before any record: %v %v", found, err)
	}
	// w2 records hashB between w1's read and w1's write: w1's write
	// conflicts, and w1 rereads and writes both.
	raced := false
	f.beforeWrite = func(f *fakeAPI, method, key string) {
		if raced {
			return
		}
		raced = true
		cm := f.cms[key]
		v, _ := json.Marshal(Failure{Node: "w2", Reason: "first", At: clk.Now()})
		cm.Data = map[string]string{hashB: string(v)}
		cm.Metadata.ResourceVersion = f.nextRV()
	}
	if err := w1.Record(ctx, hashA, "w1", "containerd did not serve kata"); err != nil {
		t.Fatal(err)
	}
	fl, found, err := w2.Lookup(ctx, hashA)
	if err != nil || !found || fl.Node != "w1" || fl.Reason != "containerd did not serve kata" || !fl.At.Equal(clk.Now()) {
		t.Fatalf("Lookup: %+v %v %v", fl, found, err)
	}
	all, err := w2.List(ctx)
	if err != nil || len(all) != 2 || all[0].Hash != hashB || all[1].Hash != hashA {
		t.Fatalf("List: %+v %v", all, err)
	}

	if err := w1.Clear(ctx, hashA); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := w2.Lookup(ctx, hashA); found {
		t.Error("hashA still recorded after Clear(hashA)")
	}
	if _, found, _ := w2.Lookup(ctx, hashB); !found {
		t.Error("hashB gone after Clear(hashA)")
	}
	if err := w1.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if all, _ := w2.List(ctx); len(all) != 0 {
		t.Errorf("after Clear(): %+v", all)
	}
	if err := w1.Record(ctx, "not/a key", "w1", "x"); err == nil {
		t.Error("a hash that is no ConfigMap key was recorded")
	}
}

func TestFailuresMissingRecord(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	_, _, err := NewFailures(f.client(t), ns, nil).Lookup(context.Background(), hashA)
	if err == nil || !strings.Contains(err.Error(), "packaging/rbac.yaml") {
		t.Errorf("Lookup without the ConfigMap: %v", err)
	}
}

// TestFleetStatus: the status lists slots with holders and durations,
// waiting nodes and failures, from the API alone.
func TestFleetStatus(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.addFailureRecord()
	clk := newFakeClock()
	ctx := t.Context()
	mustAcquire(t, ctx, newTestBudget(t, f, clk, "node-a", 2))
	clk.waitWaiters(t, 1)
	clk.tick(t, 90*time.Second, nil) // node-a renews
	mustAcquire(t, ctx, newTestBudget(t, f, clk, "node-b", 2))
	p := acquireAsync(ctx, newTestBudget(t, f, clk, "node-c", 2))
	clk.waitWaiters(t, 3)
	if err := NewFailures(f.client(t), ns, clk).Record(ctx, hashA, "node-z", "verification failed"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	st, err := ReadStatus(ctx, f.client(t), ns, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Slots) != 2 || st.Held() != 2 || len(st.Waiting) != 1 || st.Waiting[0].Node != "node-c" || len(st.Failed) != 1 {
		t.Fatalf("status %+v", st)
	}
	var out bytes.Buffer
	st.WriteText(&out)
	for _, want := range []string{
		"2 slots, 2 held, 1 nodes waiting, 1 failed policies",
		"runtimeclassd-slot-1  node-a  1m31s     1s ago\n",
		"node-c",
		"all restart slots are held (2)",
		hashA + "  node-z",
		"verification failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, out.String())
		}
	}
	if p.done.Load() {
		t.Error("node-c acquired a slot")
	}
}

// TestFleet: the daemon's view: Acquire gives a release func; Failed and
// Held go through the shared record.
func TestFleet(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.addFailureRecord()
	clk := newFakeClock()
	ctx := t.Context()
	c := f.client(t)
	fleet := &Fleet{Budget: newTestBudget(t, f, clk, "w1", 1), Failures: NewFailures(c, ns, clk), Node: "w1"}
	release, err := fleet.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Failed(ctx, hashA, "rolled back"); err != nil {
		t.Fatal(err)
	}
	release()
	release()
	if got := f.holders(ns); len(got) != 0 {
		t.Errorf("holders after release: %v", got)
	}
	other := &Fleet{Budget: newTestBudget(t, f, clk, "w2", 1), Failures: NewFailures(c, ns, clk), Node: "w2"}
	node, reason, held, err := other.Held(ctx, hashA)
	if err != nil || !held || node != "w1" || reason != "rolled back" {
		t.Errorf("Held: %q %q %v %v", node, reason, held, err)
	}
	if _, _, held, _ := other.Held(ctx, hashB); held {
		t.Error("an unrecorded hash is held")
	}
}
