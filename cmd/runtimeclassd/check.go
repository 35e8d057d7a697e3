package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

func checkFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	output := newEnum(fs, "output", "text", "output format", "text", "json")
	smoke := fs.Bool("smoke", false, "also run each served handler's sandbox smoke test through containerd's CRI, and print its timings")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if *smoke {
			return e.checkSmoke(ctx, *output)
		}
		p, err := policy.Load(e.cfg.PolicyDir, policy.Options{AllowedPrefixes: e.cfg.AllowedPathPrefixes})
		if err != nil {
			return fmt.Errorf("loading policy: %w", err)
		}
		results := daemon.CheckHandlers(daemon.NewHost(e.cfg), p)
		daemon.CheckCgroupDriver(e.cfg, p, results)
		if *output == "json" {
			if results == nil {
				results = []shimcheck.Result{}
			}
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(struct {
				Handlers []shimcheck.Result `json:"handlers"`
			}{results}); err != nil {
				return err
			}
		} else {
			printChecks(e, results)
		}
		for _, r := range results {
			if !r.Ready {
				return exitError(exitFailure)
			}
		}
		return nil
	}
}

func printChecks(e *env, results []shimcheck.Result) {
	if len(results) == 0 {
		fmt.Fprintf(e.stdout, "no handlers in %s\n", e.cfg.PolicyDir)
		return
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HANDLER\tREADY\tCHECK\tRESULT\tDETAIL")
	for _, r := range results {
		ready := "yes"
		if !r.Ready {
			ready = "NO"
		}
		for i, c := range r.Checks {
			name, rd := "", ""
			if i == 0 {
				name, rd = r.Name, ready
			}
			res := "ok"
			if !c.OK {
				res = "FAIL"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, rd, c.Name, res, c.Detail)
		}
	}
	w.Flush()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// kataOverhead is what kata-deploy's RuntimeClasses reserve per pod for the
// VM: its memory and the vCPU thread's share.
var kataOverhead = map[string]string{"memory": "160Mi", "cpu": "250m"}

func runtimeclassFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		p, err := policy.Load(e.cfg.PolicyDir, policy.Options{AllowedPrefixes: e.cfg.AllowedPathPrefixes})
		if err != nil {
			return fmt.Errorf("loading policy: %w", err)
		}
		for i, h := range p.Handlers {
			if i > 0 {
				fmt.Fprintln(e.stdout, "---")
			}
			fmt.Fprint(e.stdout, runtimeClassYAML(h))
		}
		return nil
	}
}

// runtimeClassYAML is a handler's RuntimeClass: its scheduling requires
// runtimeclassd's label (true only where the handler is offered: written,
// served and smoke-tested) plus the policy's node_selector, carries its
// tolerations, and reserves the pod overhead (the policy's, or Kata's
// default for Kata handlers). Every string is double-quoted.
func runtimeClassYAML(h policy.Handler) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# From %s. Pods run only on nodes where runtimeclassd offers %q\n", h.Source, h.Name)
	fmt.Fprintf(&b, "# (label %s%s, from its Node Feature Discovery feature file or set on the Node).\n", daemon.NFDLabelPrefix, h.Name)
	fmt.Fprintf(&b, "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: %s\nhandler: %s\n", q(h.Name), q(h.Name))
	selector := map[string]string{daemon.NFDLabelPrefix + h.Name: "true"}
	var tolerations []policy.Toleration
	overhead := map[string]string(nil)
	if strings.HasPrefix(h.Preset, "kata") || strings.HasPrefix(h.RuntimeType, "io.containerd.kata") {
		overhead = kataOverhead
	}
	if rc := h.RuntimeClass; rc != nil {
		for k, v := range rc.NodeSelector {
			selector[k] = v
		}
		tolerations = rc.Tolerations
		if rc.Overhead != nil {
			overhead = rc.Overhead
		}
	}
	b.WriteString("scheduling:\n  nodeSelector:\n")
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		fmt.Fprintf(&b, "    %s: %s\n", q(k), q(selector[k]))
	}
	if len(tolerations) > 0 {
		b.WriteString("  tolerations:\n")
		for _, t := range tolerations {
			first := "  - "
			field := func(name, v string) {
				if v != "" {
					fmt.Fprintf(&b, "%s%s: %s\n", first, name, q(v))
					first = "    "
				}
			}
			field("key", t.Key)
			field("operator", t.Operator)
			field("value", t.Value)
			field("effect", t.Effect)
			if t.TolerationSeconds != nil {
				fmt.Fprintf(&b, "%stolerationSeconds: %d\n", first, *t.TolerationSeconds)
			}
		}
	}
	if len(overhead) > 0 {
		b.WriteString("overhead:\n  podFixed:\n")
		for _, k := range slices.Sorted(maps.Keys(overhead)) {
			fmt.Fprintf(&b, "    %s: %s\n", q(k), q(overhead[k]))
		}
	}
	return b.String()
}

func statusFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		st, err := daemon.LoadState(e.cfg.StateDir)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		if st == nil {
			fmt.Fprintf(w, "last outcome:\tnone recorded in %s\n", e.cfg.StateDir)
		} else {
			fmt.Fprintf(w, "last outcome:\t%s (%s, %s)\n", st.Outcome, st.Command, st.Time.Local().Format("2006-01-02 15:04:05 MST"))
			if st.Reason != "" {
				fmt.Fprintf(w, "reason:\t%s\n", st.Reason)
			}
			if st.Backup != "" {
				fmt.Fprintf(w, "last backup:\t%s\n", st.Backup)
			}
		}
		mode, shown := e.cfg.Mode, e.cfg.Mode
		if mode == daemon.ModeAuto {
			// What auto picks here, as the daemon would.
			if m, err := e.applier().Mode(ctx); err != nil {
				shown += fmt.Sprintf(" (cannot tell what it picks: %v)", err)
			} else {
				mode, shown = m, shown+": "+m
			}
		}
		fmt.Fprintf(w, "mode:\t%s\n", shown)
		for _, f := range []string{e.cfg.ContainerdConfig, e.cfg.DropInPath()} {
			if f == e.cfg.DropInPath() && mode == daemon.ModePatch && !exists(f) {
				continue
			}
			managed, err := daemon.ManagedBlocks(f)
			switch {
			case err != nil:
				fmt.Fprintf(w, "managed in %s:\tcannot tell: %v\n", f, err)
			case len(managed) == 0:
				fmt.Fprintf(w, "managed in %s:\tnothing\n", f)
			default:
				fmt.Fprintf(w, "managed in %s:\t%s\n", f, strings.Join(managed, ", "))
			}
		}
		if st != nil && st.Import != nil {
			fmt.Fprintf(w, "imports entry:\t%s (added by runtimeclassd to %s)\n", st.Import.Path, e.cfg.ContainerdConfig)
		}
		w.Flush()
		if st != nil && len(st.Handlers) > 0 {
			fmt.Fprintln(e.stdout)
			w = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "HANDLER\tOFFERED\tWHY NOT")
			for _, h := range st.Handlers {
				offered := "yes"
				if !h.Offered {
					offered = "no"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", h.Name, offered, h.Reason)
			}
			w.Flush()
		}
		return nil
	}
}
