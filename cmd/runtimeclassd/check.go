package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

func checkFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	output := newEnum(fs, "output", "text", "output format", "text", "json")
	return func(_ context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		p, err := policy.Load(e.cfg.PolicyDir, policy.Options{AllowedPrefixes: e.cfg.AllowedPathPrefixes})
		if err != nil {
			return fmt.Errorf("loading policy: %w", err)
		}
		results := daemon.CheckHandlers(daemon.NewHost(e.cfg), p)
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

// kataOverhead is what kata-deploy's RuntimeClasses reserve per pod for the
// VM: its memory and the vCPU thread's share.
const kataOverhead = "  overhead:\n    podFixed:\n      memory: \"160Mi\"\n      cpu: \"250m\"\n"

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
			fmt.Fprintf(e.stdout, "# From %s. Pods run only on nodes where runtimeclassd found %q ready\n", h.Source, h.Name)
			fmt.Fprintf(e.stdout, "# (the label comes from Node Feature Discovery's local feature file).\n")
			fmt.Fprintf(e.stdout, "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: %s\nhandler: %s\n", h.Name, h.Name)
			fmt.Fprintf(e.stdout, "scheduling:\n  nodeSelector:\n    %s%s: \"true\"\n", daemon.NFDLabelPrefix, h.Name)
			if strings.HasPrefix(h.Preset, "kata") || strings.HasPrefix(h.RuntimeType, "io.containerd.kata") {
				fmt.Fprint(e.stdout, strings.TrimPrefix(strings.ReplaceAll(kataOverhead, "\n  ", "\n"), "  "))
			}
		}
		return nil
	}
}

func statusFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
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
		managed, err := daemon.ManagedBlocks(e.cfg.ContainerdConfig)
		switch {
		case err != nil:
			fmt.Fprintf(w, "managed in config:\tcannot tell: %v\n", err)
		case len(managed) == 0:
			fmt.Fprintf(w, "managed in config:\tnothing (%s)\n", e.cfg.ContainerdConfig)
		default:
			fmt.Fprintf(w, "managed in config:\t%s (%s)\n", strings.Join(managed, ", "), e.cfg.ContainerdConfig)
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
