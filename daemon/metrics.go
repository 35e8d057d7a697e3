//go:build !runtimeclassd_lite

// The metrics link Prometheus' client, which the one-shot command line
// (built with -tags runtimeclassd_lite) leaves out: there, metrics_lite.go
// stands in for this file.

package daemon

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

// Metrics are runtimeclassd's metrics, on a private registry.
type Metrics struct {
	Registry    *prometheus.Registry
	ready       *prometheus.GaugeVec
	hostCheck   *prometheus.GaugeVec
	reconciles  *prometheus.CounterVec
	duration    prometheus.Histogram
	restarts    *prometheus.CounterVec
	rollbacks   prometheus.Counter
	drift       prometheus.Counter
	policyValid prometheus.Gauge
	lastSuccess prometheus.Gauge
	polling     prometheus.Gauge
	backoff     prometheus.Gauge
	required    *prometheus.GaugeVec
	smokeOK     *prometheus.GaugeVec
	smokeTook   *prometheus.GaugeVec
	smokeTotal  *prometheus.CounterVec
	slotHeld    prometheus.Gauge
	waiting     prometheus.Gauge
	policyHeld  prometheus.Gauge
}

// NewMetrics registers the metrics of the contract on a new registry, with
// the Go runtime's and the process's (process_*: the unit's ProcSubset=pid
// hides /proc/stat, so process_start_time_seconds is missing there; the
// collector reports what it can read and no error) and
// runtimeclassd_build_info from prometheus/common/version (version,
// revision, branch, goversion, goos, goarch, tags; the command sets that
// package's variables at start). ver, if set, is the version it reports.
func NewMetrics(ver string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtimeclassd_handler_ready",
			Help: "1 if the handler is offered to containerd, else 0."}, []string{"handler"}),
		hostCheck: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtimeclassd_host_check_ok",
			Help: "1 if the host check of the handler passed, else 0."}, []string{"handler", "check"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runtimeclassd_reconcile_total",
			Help: "Reconciles by result: applied, unchanged, invalid, rolled_back, error."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "runtimeclassd_reconcile_duration_seconds",
			Help: "Time a reconcile took, restart and verification included.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runtimeclassd_containerd_restarts_total",
			Help: "containerd restarts over D-Bus by result: success, failure."}, []string{"result"}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "runtimeclassd_rollbacks_total",
			Help: "Configs rolled back because containerd did not come back healthy."}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{Name: "runtimeclassd_config_drift_total",
			Help: "Times someone else changed or removed a managed block."}),
		policyValid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_policy_valid",
			Help: "1 if the policy and config were valid at the last reconcile, else 0."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_last_success_timestamp_seconds",
			Help: "When a reconcile last ended applied or unchanged."}),
		polling: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_watch_polling",
			Help: "1 if inotify is unavailable and files are polled for changes instead, else 0."}),
		backoff: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_retry_backoff_seconds",
			Help: "The wait before retrying a reconcile that failed; 0 when the last one did not fail."}),
		required: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtimeclassd_handler_required",
			Help: "1 if the policy requires the node to offer the handler (required = true), else 0."}, []string{"handler"}),
		smokeOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtimeclassd_smoke_test_ok",
			Help: "1 if the handler's last sandbox smoke test passed, else 0 (failed, pending or skipped)."}, []string{"handler"}),
		smokeTook: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtimeclassd_smoke_test_duration_seconds",
			Help: "How long the handler's last sandbox smoke test took."}, []string{"handler"}),
		smokeTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runtimeclassd_smoke_tests_total",
			Help: "Sandbox smoke tests by result: passed, failed, pending, skipped."}, []string{"result"}),
		slotHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_fleet_slot_held",
			Help: "1 while this node holds one of the fleet's restart slots (from the restart until the handlers are verified and smoke-tested), else 0."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_fleet_waiting",
			Help: "1 while this node waits for a restart slot (every slot held, or the API server unreachable), else 0."}),
		policyHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runtimeclassd_policy_held",
			Help: "1 if the policy is not applied because it failed on another node, else 0."}),
	}
	var build []versioncollector.Option
	if ver != "" {
		build = append(build, versioncollector.WithExtraConstLabels(prometheus.Labels{"version": ver}))
	}
	m.Registry.MustRegister(versioncollector.NewCollector("runtimeclassd", build...), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Registry.MustRegister(m.ready, m.hostCheck, m.reconciles, m.duration, m.restarts, m.rollbacks, m.drift,
		m.policyValid, m.lastSuccess, m.polling, m.backoff, m.smokeOK, m.smokeTook, m.smokeTotal, m.slotHeld, m.waiting, m.policyHeld)
	for _, r := range []string{OutcomeApplied, OutcomeUnchanged, OutcomeInvalid, OutcomeRolledBack, OutcomeError} {
		m.reconciles.WithLabelValues(r)
	}
	m.restarts.WithLabelValues("success")
	m.restarts.WithLabelValues("failure")
	for _, r := range []string{SmokePassed, SmokeFailed, SmokePending, SmokeSkipped} {
		m.smokeTotal.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) smoked(handler string, res SmokeResult) {
	m.smokeOK.WithLabelValues(handler).Set(b2f(res.Result == SmokePassed))
	m.smokeTook.WithLabelValues(handler).Set(res.Took.Seconds())
	m.smokeTotal.WithLabelValues(res.Result).Inc()
}

func (m *Metrics) restart(err error) {
	if err != nil {
		m.restarts.WithLabelValues("failure").Inc()
	} else {
		m.restarts.WithLabelValues("success").Inc()
	}
}

// FleetWaiting sets runtimeclassd_fleet_waiting: whether the node waits for
// a restart slot.
func (m *Metrics) FleetWaiting(waiting bool) { m.waiting.Set(b2f(waiting)) }

func (m *Metrics) observe(rep *Report, took time.Duration) {
	m.reconciles.WithLabelValues(rep.Outcome).Inc()
	m.duration.Observe(took.Seconds())
	var held *HeldError
	if errors.As(rep.Err, &held) {
		m.policyHeld.Set(1)
	} else if rep.Outcome != OutcomeError {
		m.policyHeld.Set(0)
	}
	switch rep.Outcome {
	case OutcomeApplied, OutcomeUnchanged:
		m.lastSuccess.Set(float64(time.Now().Unix()))
		m.policyValid.Set(1)
	case OutcomeInvalid:
		m.policyValid.Set(0)
	}
	if rep.Policy == nil || rep.Offered == nil {
		return // what is offered was not looked at: it is what it was
	}
	m.ready.Reset()
	m.required.Reset()
	for _, h := range rep.Policy.Handlers {
		m.ready.WithLabelValues(h.Name).Set(b2f(rep.Offered[h.Name]))
		m.required.WithLabelValues(h.Name).Set(b2f(h.Required))
	}
	if rep.Plan == nil || rep.Plan.Policy != rep.Policy || rep.Plan.Readiness == nil {
		return
	}
	m.hostCheck.Reset()
	for i, h := range rep.Policy.Handlers {
		setChecks(m.hostCheck, h.Name, rep.Plan.Readiness[i].Checks)
	}
}

func setChecks(g *prometheus.GaugeVec, handler string, checks []shimcheck.Check) {
	for _, c := range checks {
		g.WithLabelValues(handler, c.Name).Set(b2f(c.OK))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
