package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/systemd"
)

// defaultListen is the metrics address: the node's loopback, so that what
// the daemon reports (handler names, host paths in check failures) is not
// offered to the whole network unless asked for; 9864 is not a port a
// well-known exporter uses. Any other address is an explicit opt-in
// (--web.listen-address), best with --web.config.file.
const defaultListen = "127.0.0.1:9864"

func runFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	listen := fs.String("web.listen-address", defaultListen, "`ADDRESS` for /metrics, /healthz and /readyz: loopback by default; another address (\":9864\" for all) exposes handler names and host paths, so protect it with --web.config.file (\"\" disables)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config `FILE`: TLS, client certificates, basic auth (see README, Metrics)")
	noRestart := fs.Bool("no-restart", false, "write the config but never restart containerd")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		e.log.Info("starting", "version", version, "policy_dir", e.cfg.PolicyDir, "containerd_config", e.cfg.ContainerdConfig)
		metrics := daemon.NewMetrics(version)
		rec, closeFn := e.reconciler(!*noRestart)
		defer closeFn()
		rec.Metrics = metrics
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		svc := &daemon.Service{Reconciler: rec, Notifier: systemd.Notifier{}, Log: e.log, Hup: hup, Ready: make(chan struct{})}
		if *listen != "" {
			srv := &http.Server{Handler: e.mux(metrics, svc.Ready), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				listens := []string{*listen}
				err := web.ListenAndServe(srv, &web.FlagConfig{WebListenAddresses: &listens, WebConfigFile: webConfig}, e.log.With("component", "web"))
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					e.log.Error("metrics server stopped", "err", err)
				}
			}()
			defer srv.Close()
		}
		return svc.Run(ctx)
	}
}

func (e *env) mux(m *daemon.Metrics, ready <-chan struct{}) *http.ServeMux {
	mux := http.NewServeMux()
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
	return mux
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
