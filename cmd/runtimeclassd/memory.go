//go:build !runtimeclassd_lite

package main

import (
	"net/http"
	"os"
	"runtime/debug"
)

// The daemon's memory: collected when it has finished something, not on a
// timer. Go's default collects at twice the live heap and, in any case,
// every two minutes; an idle daemon then wakes to collect nothing. The
// unit (packaging/runtimeclassd.service) sets GOGC=off and
// GOMEMLIMIT=32MiB: the runtime collects only when its memory nears the
// limit (a bound for bursts without a pause) and when told to, after each
// reconcile (Service.AfterReconcile) and each metrics scrape, when the
// garbage they made is collected and the freed memory returned to the
// system, so that idle means no wake-ups and only the live heap resident
// (docs/BENCHMARKS.md, goal 4). Run outside the unit with neither set, the
// daemon sets the same itself; an operator's other GOGC or GOMEMLIMIT keeps
// Go's own policy, and no collection is forced.
const memoryLimit = 32 << 20

// collectWhenIdle says whether the collector is off, so that the daemon
// must collect after its work: GOGC=off (the unit's), or neither variable
// set (then it turns it off itself).
func collectWhenIdle() bool {
	gogc, limit := os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT")
	switch {
	case gogc == "off":
		if limit == "" {
			debug.SetMemoryLimit(memoryLimit)
		}
		return true
	case gogc != "" || limit != "":
		return false
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	return true
}

// releaseMemory collects the garbage and returns the freed memory to the
// system, off the caller's goroutine.
func releaseMemory() { go debug.FreeOSMemory() }

// releasingHandler releases memory after each response.
func releasingHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		releaseMemory()
	})
}
