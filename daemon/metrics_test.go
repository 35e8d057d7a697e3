package daemon

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStandardMetrics: the registry has the Go runtime's and the
// process's metrics next to ours, and build_info with version, revision,
// branch and Go version, and gathers without an error (the process
// collector reports none for what it can't read, as under the unit's
// ProcSubset=pid, where /proc/stat and so process_start_time_seconds are
// missing).
func TestStandardMetrics(t *testing.T) {
	t.Parallel()
	m := NewMetrics("1.2.3")
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_open_fds", "runtimeclassd_build_info", "runtimeclassd_reconcile_total"} {
		if !names[n] {
			t.Errorf("%s is not registered", n)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry, "runtimeclassd_build_info"); err != nil || n != 1 {
		t.Fatalf("build_info: %d series, %v", n, err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "runtimeclassd_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for _, k := range []string{"revision", "branch"} {
			if _, ok := labels[k]; !ok {
				t.Errorf("build_info has no %s label: %v", k, labels)
			}
		}
		if labels["version"] != "1.2.3" || labels["goversion"] != runtime.Version() || !strings.HasPrefix(labels["goos"], "linux") {
			t.Errorf("build_info labels %v", labels)
		}
	}
}
