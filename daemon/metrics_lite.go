//go:build runtimeclassd_lite

package daemon

import "time"

// Metrics stands in for metrics.go in the one-shot command line (built with
// -tags runtimeclassd_lite), which never serves metrics: a Reconciler's
// Metrics is nil there, and this type only lets the package compile
// without Prometheus' client. Every field and method that code outside
// metrics.go uses needs its counterpart here; `go build -tags
// runtimeclassd_lite ./cmd/runtimeclassd` (TestLiteBuild) says which.
type Metrics struct {
	drift, rollbacks nop
	polling, backoff nop
	slotHeld         nop
}

// nop is any metric, doing nothing.
type nop struct{}

func (nop) Inc()                            {}
func (nop) Add(float64)                     {}
func (nop) Set(float64)                     {}
func (nop) Observe(float64)                 {}
func (nop) Reset()                          {}
func (n nop) WithLabelValues(...string) nop { return n }

func (*Metrics) observe(*Report, time.Duration) {}
func (*Metrics) restart(error)                  {}
func (*Metrics) smoked(string, SmokeResult)     {}
func (*Metrics) FleetWaiting(bool)              {}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
