//go:build !runtimeclassd_lite

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

// checkSmoke is `check --smoke`: the host checks, then, for each handler
// the running containerd serves, the daemon's sandbox smoke test, with its
// timings. It exits 0 only if every handler is ready and passed.
func (e *env) checkSmoke(ctx context.Context, output string) error {
	p, err := policy.Load(e.cfg.PolicyDir, policy.Options{AllowedPrefixes: e.cfg.AllowedPathPrefixes})
	if err != nil {
		return fmt.Errorf("loading policy: %w", err)
	}
	results := daemon.CheckHandlers(daemon.NewHost(e.cfg), p)
	daemon.CheckCgroupDriver(e.cfg, p, results)
	checker := &ctrdhealth.Checker{Address: e.cfg.ContainerdAddress}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	served, err := checker.Served(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("asking containerd which handlers it serves (%s): %w", e.cfg.ContainerdAddress, err)
	}
	image := e.applier().SandboxImage(ctx)
	var smokes []ctrdhealth.SmokeResult
	for _, h := range p.Handlers {
		var r ctrdhealth.SmokeResult
		switch {
		case h.Smoke == policy.SmokeOff:
			r = ctrdhealth.SmokeResult{Handler: h.Name, Result: "off", Detail: "smoke = \"off\" in the policy"}
		case !slices.Contains(served, h.Name):
			r = ctrdhealth.SmokeResult{Handler: h.Name, Result: "not served", Detail: "the running containerd does not serve it (apply, or restart containerd)"}
		default:
			tctx, cancel := context.WithTimeout(ctx, time.Duration(e.cfg.SmokeTimeout))
			r = checker.Smoke(tctx, h.Name, ctrdhealth.SmokeOptions{Image: image, PodNetwork: h.Smoke == policy.SmokePod, Pull: e.cfg.SmokePull})
			cancel()
		}
		smokes = append(smokes, r)
	}
	if output == "json" {
		if results == nil {
			results = []shimcheck.Result{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Handlers []shimcheck.Result       `json:"handlers"`
			Smoke    []ctrdhealth.SmokeResult `json:"smoke"`
		}{results, smokes}); err != nil {
			return err
		}
	} else {
		printChecks(e, results)
		fmt.Fprintln(e.stdout)
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "HANDLER\tSMOKE TEST\tTOOK\tSANDBOX\tCONTAINER\tSTOP\tREMOVE\tDETAIL")
		for _, r := range smokes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Handler, r.Result, ms(r.Took), ms(r.Run), ms(r.Container), ms(r.Stop), ms(r.Remove), r.Detail)
		}
		w.Flush()
	}
	for i, r := range results {
		if !r.Ready || smokes[i].Result != ctrdhealth.SmokePassed && smokes[i].Result != "off" {
			return exitError(exitFailure)
		}
	}
	return nil
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}
