//go:build !runtimeclassd_lite

// This file is the part of the command that links containerd's API
// (gRPC), systemd's D-Bus and the metrics server: the daemon, and apply and
// revert when they write. Only runtimeclassd-daemon, the complete build,
// has it; bin/runtimeclassd (lite.go) executes that build for these.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	promversion "github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/systemd"
)

// runDaemon is `runtimeclassd run`.
func (e *env) runDaemon(ctx context.Context, o *runOptions) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	e.log.Info("starting", "version", version, "revision", buildRevision(), "policy_dir", e.cfg.PolicyDir, "containerd_config", e.cfg.ContainerdConfig)
	// build_info reads prometheus/common/version.
	promversion.Version, promversion.Revision, promversion.Branch = version, buildRevision(), branch
	metrics := daemon.NewMetrics(version)
	rec, closeFn := e.reconciler(!o.noRestart)
	defer closeFn()
	rec.Metrics = metrics
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var notifier daemon.Notifier = systemd.Notifier{}
	idle := collectWhenIdle()
	svc := &daemon.Service{Reconciler: rec, Notifier: notifier, Log: e.log, Hup: hup, Ready: make(chan struct{})}
	if idle {
		svc.AfterReconcile = releaseMemory
	}
	status := func(s string) {
		if _, err := notifier.Notify("STATUS=" + s); err != nil {
			e.log.Warn("sd_notify failed", "err", err)
		}
	}
	if err := e.wireKube(ctx, rec, metrics, status); err != nil {
		return err
	}
	if o.listen != "" {
		mux, err := e.mux(metrics, svc.Ready)
		if err != nil {
			return err
		}
		var handler http.Handler = mux
		if idle {
			handler = releasingHandler(mux)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			listens := []string{o.listen}
			err := web.ListenAndServe(srv, &web.FlagConfig{WebListenAddresses: &listens, WebConfigFile: &o.webConfig}, e.log.With("component", "web"))
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.log.Error("metrics server stopped", "err", err)
			}
		}()
		defer srv.Close()
	}
	return svc.Run(ctx)
}

// mux serves the metrics, the health and readiness checks, and a landing
// page at / that links them.
func (e *env) mux(m *daemon.Metrics, ready <-chan struct{}) (*http.ServeMux, error) {
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "runtimeclassd",
		Description: summary,
		Version:     fmt.Sprintf("%s (revision %s, branch %s)", version, buildRevision(), branch),
		Profiling:   "false",
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics", Description: "runtimeclassd's metrics, the Go runtime's and the process's"},
			{Address: "/healthz", Text: "Health", Description: "ok while the process serves"},
			{Address: "/readyz", Text: "Readiness", Description: "ok once the first reconcile has finished"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", landing)
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "first reconcile not finished", http.StatusServiceUnavailable)
		}
	})
	return mux, nil
}

// reconciler builds the reconcile pipeline; with restart, it restarts
// containerd over D-Bus, connecting on first use so that bad input is
// reported before anything about systemd.
func (e *env) reconciler(restart bool) (*daemon.Reconciler, func()) {
	checker := &ctrdhealth.Checker{Address: e.cfg.ContainerdAddress}
	rec := &daemon.Reconciler{
		Applier:  e.applier(),
		Verifier: checker,
		Smoker:   smoker{checker},
		Log:      e.log,
	}
	if !restart {
		return rec, func() {}
	}
	m := systemd.Lazy()
	rec.Restarter = m
	return rec, m.Close
}

// change runs apply or revert. The config or diff goes to stdout; what
// happened goes to stderr. Anything that writes takes the daemon's own path
// (lock, backup, compare-and-swap write, state, labels from what containerd
// serves), with or without the restart.
func (e *env) change(ctx context.Context, opts daemon.PlanOptions, diff, noRestart bool) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rec, closeFn := e.reconciler(!noRestart)
	defer closeFn()
	// A restart from the command line takes a restart slot and heeds the
	// fleet's failure record, as the daemon's do: running apply on every
	// node at once (configuration management) must not restart them all.
	if err := e.wireFleet(rec, nil, func(s string) { fmt.Fprintln(e.stderr, s) }); err != nil {
		return err
	}
	flushLabels := e.oneShotLabels(ctx, rec, opts.Revert)
	rep := rec.ReconcileWith(ctx, opts)
	flushLabels()
	if rep.Plan != nil {
		e.printPlan(rep.Plan)
		if diff {
			fmt.Fprint(e.stdout, rep.Plan.Diff(e.cfg.ContainerdConfig))
		}
	}
	// The files written: config.toml, the drop-in, or both.
	wrote := e.cfg.ContainerdConfig
	if rep.Plan != nil {
		if w := rep.Plan.Written(e.cfg.ContainerdConfig); len(w) > 0 {
			wrote = strings.Join(w, " and ")
		}
	}
	switch {
	case rep.Err != nil && rep.Outcome != daemon.OutcomeHeld:
		return rep.Err
	case rep.Outcome == daemon.OutcomeUnchanged:
		fmt.Fprintf(e.stderr, "%s is up to date; nothing written\n", e.cfg.ContainerdConfig)
	case rep.Restarted:
		fmt.Fprintf(e.stderr, "wrote %s (%s), restarted %s and verified it serves %s\n", wrote, backupNote(rep.Backup), e.cfg.ContainerdUnit, servedNote(rep))
	case noRestart:
		fmt.Fprintf(e.stderr, "wrote %s (%s)\n", wrote, backupNote(rep.Backup))
		fmt.Fprintf(e.stderr, "not restarting containerd (--no-restart); the change takes effect at its next restart\n")
	default:
		fmt.Fprintf(e.stderr, "wrote %s (%s); %s is not running, so it was not started\n", wrote, backupNote(rep.Backup), e.cfg.ContainerdUnit)
	}
	if opts.Revert {
		fmt.Fprintln(e.stderr, "a running daemon will not re-apply the policy until it changes or `runtimeclassd apply` runs")
	}
	return nil
}

func backupNote(backup string) string {
	if backup == "" {
		return "new file"
	}
	return "previous version saved as " + backup
}

func servedNote(rep *daemon.Report) string {
	var names []string
	for n, ok := range rep.Offered {
		if ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no managed handlers"
	}
	return strings.Join(names, ", ")
}
