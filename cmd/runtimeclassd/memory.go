//go:build !runtimeclassd_lite

package main

import (
	"net/http"
	"os"
	"runtime/debug"
	"strings"

	"github.com/runtimeclassd/runtimeclassd/daemon"
)

// The daemon's memory: collected when it has finished something, not on a
// timer. Go's default collects at twice the live heap and, in any case,
// every two minutes; an idle daemon then wakes to collect nothing. With
// the percentage off, the runtime collects only when its memory nears
// memoryLimit (a bound for bursts without a pause) and when told to:
// after each reconcile and each metrics scrape, the garbage they made is
// collected and the freed memory returned to the system, so that idle
// means no wake-ups and only the live heap resident (docs/BENCHMARKS.md,
// goal 4). GOGC or GOMEMLIMIT in the environment keep Go's own policy.
const memoryLimit = 32 << 20

func collectWhenIdle() bool {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	return true
}

// releaseMemory collects the garbage and returns the freed memory to the
// system, off the caller's goroutine.
func releaseMemory() { go debug.FreeOSMemory() }

// releasingNotifier releases memory after each reconcile, which the
// service reports with STATUS=.
type releasingNotifier struct{ daemon.Notifier }

func (n releasingNotifier) Notify(state string) (bool, error) {
	ok, err := n.Notifier.Notify(state)
	if strings.HasPrefix(state, "STATUS=") {
		releaseMemory()
	}
	return ok, err
}

// releasingHandler releases memory after each response.
func releasingHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		releaseMemory()
	})
}
