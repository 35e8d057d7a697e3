package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

const longFleet = `Shows or edits the fleet's coordination in the Kubernetes API (docs/FLEET.md): the restart slots (Leases runtimeclassd-slot-N) with their holders and how long they have held them, the nodes waiting for one and why, and the policies that failed on a node, by hash, with the node, the time and the reason.

fleet status reads them: one list of Leases and one read of the failure record. fleet clear HASH... forgets failed policies (a unique prefix of a hash is enough; --all forgets every one), so that the nodes that hold them apply them at their next reconcile (a resync, SIGHUP, or any change).

The credential is fleet_kubeconfig from the daemon config, or --kubeconfig; the namespace is fleet_namespace (runtimeclassd-fleet), or --namespace.`

type fleetOptions struct {
	kubeconfig, namespace string
	all                   bool
}

func fleetFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var o fleetOptions
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: fleet_kubeconfig of the daemon config)")
	fs.StringVar(&o.namespace, "namespace", "", "the fleet's `NAMESPACE` (default: fleet_namespace of the daemon config)")
	fs.BoolVar(&o.all, "all", false, "with clear: forget every failed policy")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%w: fleet status | fleet clear (--all | HASH...)", errUsage)
		}
		// Flags may follow the subcommand too: fleet clear --all.
		sub := args[0]
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		switch {
		case sub == "status" && len(rest) > 0:
			return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
		case sub == "clear" && o.all == (len(rest) > 0):
			return fmt.Errorf("%w: fleet clear takes --all or policy hashes, not both or neither", errUsage)
		case sub != "status" && sub != "clear":
			return fmt.Errorf("%w: unknown fleet command %q: status or clear", errUsage, sub)
		}
		if o.kubeconfig == "" {
			o.kubeconfig = e.cfg.FleetKubeconfig
		}
		if o.kubeconfig == "" {
			return fmt.Errorf("no kubeconfig: set fleet_kubeconfig in the daemon config or give --kubeconfig")
		}
		if o.namespace == "" {
			o.namespace = e.cfg.FleetNamespace
		}
		return e.fleet(ctx, &o, sub, rest)
	}
}
