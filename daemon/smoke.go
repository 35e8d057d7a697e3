package daemon

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// Smoker runs a pod sandbox through containerd's CRI with a handler, as
// kubelet would for a pod of its RuntimeClass (ctrdhealth does it for
// real). The daemon keeps its own types so that it does not depend on the
// CRI client.
type Smoker interface {
	Smoke(ctx context.Context, handler string, opts SmokeOptions) SmokeResult
	RemoveLeftovers(ctx context.Context) (int, error)
}

// SmokeOptions tune a smoke test.
type SmokeOptions struct {
	Image      string // the sandbox image; "" lets containerd say
	PodNetwork bool
	Pull       bool
}

// Smoke test results, as ctrdhealth names them.
const (
	SmokePassed  = "passed"
	SmokeFailed  = "failed"
	SmokePending = "pending"
	SmokeSkipped = "skipped"
)

// SmokeResult is the outcome of one smoke test.
type SmokeResult struct {
	Handler, Result, Detail            string
	Run, Container, Stop, Remove, Took time.Duration
}

// SmokeRecord is a handler's last smoke test, kept in the state file. It
// holds for the managed block it tested (Block is the block's hash): a
// changed block is tested again.
type SmokeRecord struct {
	Block  string        `json:"block"`
	Result string        `json:"result"`
	Detail string        `json:"detail,omitempty"`
	At     time.Time     `json:"at"`
	Took   time.Duration `json:"took_ns"`
}

// Offer is whether a policy handler is offered, and why not.
type Offer struct {
	Offered bool
	Reason  string
	// Smoke is the handler's smoke test, if one ran or is on record.
	Smoke *SmokeRecord
}

// offers decides, for each policy handler, whether the node offers it:
// it has a managed block in config.toml, the running containerd serves it
// (asked through CRI), and a sandbox ran through it (a smoke test of that
// very block, run now if there is none on record). Only what is offered
// reaches the labels and handler_ready: a plan, a rolled-back candidate, a
// config written without a restart or a handler that can't start a pod
// never does.
func (r *Reconciler) offers(ctx context.Context, pol *policy.Policy) map[string]Offer {
	out := map[string]Offer{}
	no := func(reason string) {
		for _, h := range pol.Handlers {
			out[h.Name] = Offer{Reason: reason}
		}
	}
	var blocks []ctrdconfig.Block
	for _, f := range r.Applier.Cfg.managedFiles() {
		b, err := blocksOf(f)
		if err != nil {
			no(f + " can't be read: " + err.Error())
			return out
		}
		blocks = append(blocks, b...)
	}
	hash := map[string]string{}
	for _, b := range blocks {
		hash[b.Handler] = b.Hash
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.busy("asking containerd what it serves", r.now().Add(5*time.Second))
	served, err := r.Verifier.Served(sctx)
	cancel()
	if err != nil {
		r.Log.Warn("containerd did not say which handlers it serves; offering none", "err", err)
		no("containerd does not answer: " + err.Error())
		return out
	}
	st, _ := LoadState(r.Applier.Cfg.StateDir)
	records := map[string]SmokeRecord{}
	if st != nil && st.Smoke != nil {
		records = st.Smoke
	}
	changed := false
	for _, h := range pol.Handlers {
		block, written := hash[h.Name]
		switch {
		case !written:
			out[h.Name] = Offer{Reason: "not written (withheld, or in conflict)"}
			continue
		case !contains(served, h.Name):
			out[h.Name] = Offer{Reason: "written to config.toml, but the running containerd does not serve it (not restarted yet, rolled back, or down)"}
			continue
		case h.Smoke == policy.SmokeOff || r.Smoker == nil:
			out[h.Name] = Offer{Offered: true}
			continue
		}
		rec, ok := records[h.Name]
		if !ok || rec.Block != block || rec.Result != SmokePassed {
			rec = r.smoke(ctx, h, block)
			records[h.Name] = rec
			changed = true
		}
		o := Offer{Offered: rec.Result == SmokePassed, Smoke: &rec}
		if !o.Offered {
			o.Reason = fmt.Sprintf("smoke test %s: %s", rec.Result, rec.Detail)
		}
		out[h.Name] = o
	}
	for name := range records {
		if _, ok := hash[name]; !ok {
			delete(records, name) // block gone: its test is moot
			changed = true
		}
	}
	if changed {
		r.mutateState(func(s *State) { s.Smoke = records })
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// smoke runs one handler's smoke test, bounded by smoke_timeout.
func (r *Reconciler) smoke(ctx context.Context, h policy.Handler, block string) SmokeRecord {
	cfg := r.Applier.Cfg
	timeout := time.Duration(cfg.SmokeTimeout)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.busy("smoke-testing "+h.Name, r.now().Add(timeout+30*time.Second))
	opts := SmokeOptions{PodNetwork: h.Smoke == policy.SmokePod, Pull: cfg.SmokePull, Image: r.Applier.SandboxImage(ctx)}
	res := r.Smoker.Smoke(sctx, h.Name, opts)
	if r.Metrics != nil {
		r.Metrics.smoked(h.Name, res)
	}
	rec := SmokeRecord{Block: block, Result: res.Result, Detail: res.Detail, At: r.now().UTC(), Took: res.Took}
	switch res.Result {
	case SmokePassed:
		r.Log.Info("smoke test passed: a pod (sandbox and container) ran with the handler", "handler", h.Name, "took", res.Took.Round(time.Millisecond))
	case SmokeFailed:
		r.Log.Error("smoke test failed: the handler stays in config.toml, not offered", "handler", h.Name, "err", res.Detail)
	default:
		r.Log.Warn("smoke test "+res.Result+"; the handler is not offered until it passes", "handler", h.Name, "reason", res.Detail)
	}
	return rec
}

// SandboxImage is the sandbox (pause) image containerd is configured with,
// from its effective config ("" if it can't be told); the dump is cached by
// config.toml's bytes.
func (a *Applier) SandboxImage(ctx context.Context) string {
	cur, err := os.ReadFile(a.Cfg.ContainerdConfig)
	if err != nil {
		cur = nil // containerd's defaults
	}
	dump, err := a.currentDump(ctx, cur)
	if err != nil {
		a.Log.Warn("reading containerd's sandbox image from its config", "err", err)
		return ""
	}
	return ctrdconfig.SandboxImage(dump)
}
