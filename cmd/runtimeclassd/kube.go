//go:build !runtimeclassd_lite

// The daemon's use of the Kubernetes API (package kube): its Node's labels
// and the fleet's restart budget and failure record, and `runtimeclassd
// fleet`. Only the complete build links it.

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/kube"
)

// fleet is `runtimeclassd fleet status | clear`.
func (e *env) fleet(ctx context.Context, o *fleetOptions, sub string, hashes []string) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, _, err := kubeClient(o.kubeconfig)
	if err != nil {
		return err
	}
	defer c.Close()
	if sub == "status" {
		st, err := kube.ReadStatus(ctx, c, o.namespace, time.Now())
		if err != nil {
			return err
		}
		return st.WriteText(e.stdout)
	}
	failures := kube.NewFailures(c, o.namespace, nil)
	recorded, err := failures.List(ctx)
	if err != nil {
		return err
	}
	var clear []kube.Failure
	for _, h := range hashes {
		var match []kube.Failure
		for _, f := range recorded {
			if strings.HasPrefix(f.Hash, h) {
				match = append(match, f)
			}
		}
		switch {
		case len(match) == 0:
			return fmt.Errorf("no failed policy %s in namespace %s (fleet status lists them); nothing cleared", h, o.namespace)
		case len(match) > 1:
			return fmt.Errorf("%s is the start of %d failed policies' hashes; give more of it; nothing cleared", h, len(match))
		}
		clear = append(clear, match[0])
	}
	if o.all {
		clear = recorded
	}
	if len(clear) == 0 {
		fmt.Fprintln(e.stderr, "no failed policy recorded; nothing to clear")
		return nil
	}
	names := make([]string, len(clear))
	for i, f := range clear {
		names[i] = f.Hash
	}
	if err := failures.Clear(ctx, names...); err != nil {
		return err
	}
	for _, f := range clear {
		fmt.Fprintf(e.stderr, "cleared %s (failed on %s at %s: %s)\n", f.Hash, f.Node, f.At.Local().Format(time.DateTime), f.Reason)
	}
	return nil
}

// kubeClient reads a kubeconfig and makes its client.
func kubeClient(path string) (*kube.Client, *kube.Config, error) {
	kc, err := kube.LoadKubeconfig(path)
	if err != nil {
		return nil, nil, err
	}
	c, err := kube.NewClient(kc)
	if err != nil {
		return nil, nil, err
	}
	return c, kc, nil
}

// nodeName is this node's name in the cluster: node_name, else the
// kubelet certificate's system:node:NAME, else the host name.
func (e *env) nodeName(kc *kube.Config) (string, error) {
	if e.cfg.NodeName != "" {
		return e.cfg.NodeName, nil
	}
	if kc != nil {
		if n, err := kc.NodeName(); err == nil {
			return n, nil
		}
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("the node's name: set node_name: %w", err)
	}
	return strings.ToLower(h), nil
}

// holderIdentity is this node's identity in the slot Leases: its name and
// the first 12 characters of its machine ID (/etc/machine-id), so that two
// machines registered under one name are two holders; the name alone when
// there is no machine ID.
func holderIdentity(node string) string {
	b, err := os.ReadFile("/etc/machine-id")
	id := strings.TrimSpace(string(b))
	if err != nil || len(id) < 12 {
		return node
	}
	return node + "@" + id[:12]
}

// labelSetter adapts kube.Labeler to daemon.NodeLabels.
type labelSetter struct {
	l   *kube.Labeler
	env *env
}

func (s labelSetter) SetHandlers(offered map[string]bool) {
	if err := s.l.Sync(context.Background(), kube.HandlerLabels(offered)); err != nil {
		s.env.log.Warn("node labels not set", "err", err)
	}
}

// nodeLabeler starts the Node labeler from node_kubeconfig, running until
// ctx ends; nil when there is no such file or it can't be used (then the
// NFD feature file is the only way, as the log says).
func (e *env) nodeLabeler(ctx context.Context, metrics *daemon.Metrics) (*kube.Labeler, error) {
	path := e.cfg.NodeKubeconfig
	if path == "" {
		return nil, nil
	}
	c, kc, err := kubeClient(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.log.Info("no kubeconfig for node labels; the NFD feature file only", "node_kubeconfig", path)
		return nil, nil
	case err != nil:
		e.log.Error("node labels disabled: the kubeconfig can't be used; the NFD feature file only", "node_kubeconfig", path, "err", err)
		return nil, nil
	}
	node, err := e.nodeName(kc)
	if err != nil {
		return nil, err
	}
	countRequests(metrics, c, "labels")
	// Read the Node again once a resync interval: a label removed by
	// someone else, or a Node registered again, is repaired at the next
	// resync.
	l := kube.NewLabeler(c, node, kube.LabelerOptions{Log: e.log.With("component", "labels"), RecheckAfter: time.Duration(e.cfg.ResyncInterval)})
	go l.Run(ctx)
	e.log.Info("setting the node's labels on its Node object", "node", node, "node_kubeconfig", path)
	return l, nil
}

// oneShotLabels lets a one-shot revert set the Node's labels as the daemon
// would: after a purge's revert (the daemon stopped) the Node must not go
// on saying it offers the handlers. The returned flush waits for them, at
// most 10 s (the API server may be down: then it says so, and the labels
// are left as they were). apply leaves the labels to the daemon: the boot
// unit's apply --no-restart runs before the network, and a label written
// by a one-shot apply that changed no file would not be seen by the
// running daemon's labeler, which patches only what it knows to differ.
func (e *env) oneShotLabels(ctx context.Context, rec *daemon.Reconciler, revert bool) (flush func()) {
	if !revert {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	l, err := e.nodeLabeler(ctx, nil)
	if err != nil || l == nil {
		if err != nil {
			fmt.Fprintf(e.stderr, "warning: node labels not set: %v\n", err)
		}
		cancel()
		return func() {}
	}
	rec.NodeLabels = labelSetter{l, e}
	return func() {
		defer cancel()
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		defer fcancel()
		if err := l.Flush(fctx); err != nil {
			fmt.Fprintf(e.stderr, "warning: %v; the Node's labels are as they were\n", err)
		}
	}
}

// wireKube gives the reconciler its Node labeler (from node_kubeconfig, if
// the file exists) and the fleet (from fleet_kubeconfig, if set), and
// starts what runs in the background until ctx ends. A node kubeconfig
// that can't be used only costs the labels (the NFD file stays); a fleet
// that was asked for and can't be set up stops the daemon from starting,
// since restarting without it would break the fleet's promise.
func (e *env) wireKube(ctx context.Context, rec *daemon.Reconciler, metrics *daemon.Metrics, status func(string)) error {
	rec.OnAPIUnreachable = e.cfg.OnAPIUnreachable
	l, err := e.nodeLabeler(ctx, metrics)
	if err != nil {
		return err
	}
	if l != nil {
		rec.NodeLabels = labelSetter{l, e}
	}
	return e.wireFleet(rec, metrics, status)
}

// wireFleet gives the reconciler the fleet's restart budget and failure
// record, from fleet_kubeconfig if set: for the daemon, and for a one-shot
// apply or revert, whose restart must hold a slot too.
func (e *env) wireFleet(rec *daemon.Reconciler, metrics *daemon.Metrics, status func(string)) error {
	rec.OnAPIUnreachable = e.cfg.OnAPIUnreachable
	if path := e.cfg.FleetKubeconfig; path != "" {
		c, kc, err := kubeClient(path)
		if err != nil {
			return fmt.Errorf("fleet_kubeconfig: %w", err)
		}
		node, err := e.nodeName(kc)
		if err != nil {
			return err
		}
		countRequests(metrics, c, "fleet")
		b, err := kube.NewBudget(c, kube.BudgetConfig{
			Namespace: e.cfg.FleetNamespace, Node: node, Identity: holderIdentity(node), Slots: e.cfg.MaxConcurrentRestarts,
			LeaseDuration: time.Duration(e.cfg.FleetLeaseDuration), OnUnreachable: e.cfg.OnAPIUnreachable,
			OnWait: func(waiting bool, reason string) {
				if metrics != nil {
					metrics.FleetWaiting(waiting)
				}
				if waiting {
					status("waiting for a restart slot: " + reason)
				}
			},
			Log: e.log.With("component", "fleet"),
		})
		if err != nil {
			return err
		}
		rec.Fleet = &kube.Fleet{Budget: b, Failures: kube.NewFailures(c, e.cfg.FleetNamespace, nil), Node: node}
		e.log.Info("fleet coordination on", "node", node, "namespace", e.cfg.FleetNamespace, "max_concurrent_restarts", e.cfg.MaxConcurrentRestarts)
	}
	return nil
}

// countRequests exports how many requests a client has sent to the API
// server, as runtimeclassd_kube_api_requests_total{client}: what the node
// costs the control plane, to be a handful per change, never a poll loop.
func countRequests(m *daemon.Metrics, c *kube.Client, client string) {
	if m == nil || m.Registry == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "runtimeclassd_kube_api_requests_total",
		Help:        "Requests sent to the Kubernetes API server, by client: labels (the Node's labels) or fleet (restart slots and the failure record).",
		ConstLabels: prometheus.Labels{"client": client},
	}, func() float64 { return float64(c.Requests()) }))
}
