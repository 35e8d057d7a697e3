// Command runtimeclassd keeps containerd's CRI runtime handlers in line with
// the policy in /etc/runtimeclassd/policy.d. This file only parses flags,
// wires the packages together and maps outcomes to exit codes.
//
// It is built twice from this one package. bin/runtimeclassd (installed as
// /usr/bin/runtimeclassd, built with -tags runtimeclassd_lite) is what
// people and configuration management run: every command, linking only
// what the one-shot commands need, so that it starts in a couple of
// milliseconds. Commands that talk to containerd's API or to systemd, or
// serve metrics (run, and apply and revert when they write), execute the
// complete build, runtimeclassd-daemon, next to it or in
// ../libexec/runtimeclassd/, with the same arguments (lite.go, full.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// Build information, set with -ldflags "-X main.version=... -X
// main.revision=... -X main.branch=...".
var (
	version  = "dev"
	revision string // default: the VCS revision Go recorded, if any
	branch   = "unknown"
)

// buildRevision is the commit the binary was built from.
func buildRevision() string {
	if revision != "" {
		return revision
	}
	rev, dirty := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-modified"
			}
		}
	}
	return rev + dirty
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// interruptible is ctx, ended by SIGINT or SIGTERM, for the commands that
// run containerd or write: they stop their child, remove their candidate
// file and leave the state consistent. The others keep the default (a
// signal ends them at once), since asking for signals starts two threads,
// a tenth of a dry run's time (docs/BENCHMARKS.md).
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

type command struct {
	name, args, help string
	// long is the man page's description: paragraphs separated by blank
	// lines.
	long  string
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// env is what every command gets: the merged config, the logger, the
// output streams, and the arguments Main was given.
type env struct {
	cfg            daemon.Config
	log            *slog.Logger
	stdout, stderr io.Writer
	args           []string
}

const summary = "Keeps containerd's CRI runtime handlers in line with the policy in /etc/runtimeclassd/policy.d."

var commands = []command{
	{"run", "", "the daemon: watch, reconcile, restart containerd, verify, roll back", longRun, runFlags},
	{"apply", "", "merge the policy's handlers into containerd's config", longApply, applyFlags},
	{"revert", "", "remove every block runtimeclassd manages from containerd's config", longRevert, revertFlags},
	{"check", "", "host readiness of each handler (exit 0 only if all are ready)", longCheck, checkFlags},
	{"validate", "FILE...", "lint policy files", longValidate, validateFlags},
	{"runtimeclass", "", "print a RuntimeClass manifest for each handler", longRuntimeclass, runtimeclassFlags},
	{"status", "", "what is managed, and the last outcome", longStatus, statusFlags},
	{"fleet", "status | clear (--all | HASH...)", "the fleet's restart slots, waiting nodes and failed policies", longFleet, fleetFlags},
	{"version", "", "print the version", "Prints the version, the commit and branch it was built from, and the Go version and platform.", versionFlags},
}

// globalFlags are accepted before and after the command name.
type globalFlags struct {
	configFile string
	logLevel   slog.LevelVar
	version    bool
	cfg        daemon.Config
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	d := daemon.DefaultConfig()
	g.logLevel.Set(slog.LevelWarn)
	fs.StringVar(&g.configFile, "config", "/etc/runtimeclassd/config.toml", "daemon config `FILE` (missing means defaults)")
	fs.Var(&levelValue{&g.logLevel}, "log-level", "log `LEVEL`: debug, info, warn, error")
	fs.StringVar(&g.cfg.ContainerdConfig, "containerd-config", d.ContainerdConfig, "containerd's config `FILE`")
	fs.StringVar(&g.cfg.PolicyDir, "policy-dir", d.PolicyDir, "policy `DIR`")
	fs.StringVar(&g.cfg.StateDir, "state-dir", d.StateDir, "state and backups `DIR`")
	fs.StringVar(&g.cfg.ShimPath, "shim-path", d.ShimPath, "colon-separated `DIRS` where shims are looked up")
	fs.StringVar(&g.cfg.HostRoot, "host-root", d.HostRoot, "`DIR` prefixed to /dev, /sys, /proc and /etc/kata-containers lookups")
	fs.StringVar(&g.cfg.ContainerdBin, "containerd-bin", d.ContainerdBin, "containerd `FILE`, used to validate configs")
	fs.StringVar(&g.cfg.ContainerdAddress, "containerd-address", d.ContainerdAddress, "containerd's gRPC `SOCK`")
	fs.StringVar(&g.cfg.ContainerdUnit, "containerd-unit", d.ContainerdUnit, "containerd's systemd `NAME`")
	fs.StringVar(&g.cfg.NFDFeatureFile, "nfd-feature-file", d.NFDFeatureFile, "Node Feature Discovery feature `FILE` (\"\" disables)")
	fs.Var(&enumValue{val: &g.cfg.Mode, allowed: []string{daemon.ModePatch, daemon.ModeDropIn, daemon.ModeAuto}}, "mode", "where handlers are written: patch (config.toml), drop-in (one file config.toml imports; containerd 2.x) or auto")
	g.cfg.Mode = d.Mode
	fs.StringVar(&g.cfg.DropIn, "drop-in", d.DropIn, "the drop-in `FILE` of mode drop-in (default: conf.d/50-runtimeclassd.toml next to containerd's config)")
	fs.BoolVar(&g.version, "version", false, "print the version and exit")
	fs.BoolVar(&g.version, "v", false, "print the version and exit")
}

// merge loads the config file and lays the flags that were set on it.
func (g *globalFlags) merge(set map[string]bool) (daemon.Config, error) {
	cfg, err := daemon.LoadConfig(g.configFile)
	if err != nil {
		return cfg, err
	}
	from, to := g.cfg.Paths(), cfg.Paths()
	for name, dst := range to {
		if set[name] {
			*dst = *from[name]
		}
	}
	return cfg, nil
}

// Main runs the command line args and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	set := map[string]bool{}
	top := flag.NewFlagSet("runtimeclassd", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		usageError(stderr, nil, err)
		return exitUsage
	}
	if g.version {
		printVersion(stdout)
		return exitOK
	}
	top.Visit(func(f *flag.Flag) { set[f.Name] = true })
	rest := top.Args()
	if len(rest) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch rest[0] {
	case "help":
		return helpCommand(rest[1:], stdout, stderr)
	case docsCommand:
		return writeDocs(rest[1:], stderr)
	}
	cmd := lookup(rest[0])
	if cmd == nil {
		usageError(stderr, nil, fmt.Errorf("unknown command %q", rest[0]))
		return exitUsage
	}
	fs := flag.NewFlagSet("runtimeclassd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The same flag values, so that global flags may come after the
	// command name too.
	top.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	run := cmd.flags(fs)
	if err := fs.Parse(rest[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, cmd)
			return exitOK
		}
		usageError(stderr, cmd, err)
		return exitUsage
	}
	if g.version {
		printVersion(stdout)
		return exitOK
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	log := newLogger(stderr, &g.logLevel)
	cfg, err := g.merge(set)
	if err != nil {
		fmt.Fprintf(stderr, "runtimeclassd: %v\n", err)
		return exitFailure
	}
	e := &env{cfg: cfg, log: log, stdout: stdout, stderr: stderr, args: args}
	if err := run(ctx, e, fs.Args()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// A command's subcommand asked for help (fleet status --help).
			commandUsage(stdout, cmd)
			return exitOK
		}
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "runtimeclassd %s: %v\n", cmd.name, dashed(strings.TrimPrefix(err.Error(), "usage: ")))
			return exitUsage
		}
		var ex exitError
		if errors.As(err, &ex) {
			return int(ex)
		}
		fmt.Fprintf(stderr, "runtimeclassd %s: %v\n", cmd.name, err)
		return exitFailure
	}
	return exitOK
}

// exitError is a status a command has already explained.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
	}
	return nil
}

func (e *env) applier() *daemon.Applier {
	return &daemon.Applier{
		Cfg:       e.cfg,
		Log:       e.log,
		Validator: &ctrdconfig.Validator{Binary: e.cfg.ContainerdBin},
		Host:      daemon.NewHost(e.cfg),
	}
}

// defaultListen is the metrics address: the node's loopback, so that what
// the daemon reports (handler names, host paths in check failures) is not
// offered to the whole network unless asked for; 9864 is not a port a
// well-known exporter uses. Any other address is an explicit opt-in
// (--web.listen-address), best with --web.config.file.
const defaultListen = "127.0.0.1:9864"

// runOptions are run's flags.
type runOptions struct {
	listen, webConfig string
	noRestart         bool
}

func runFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	o := &runOptions{}
	fs.StringVar(&o.listen, "web.listen-address", defaultListen, "`ADDRESS` for /, /metrics, /healthz and /readyz: loopback by default; another address (\":9864\" for all) exposes handler names and host paths, so protect it with --web.config.file (\"\" disables)")
	fs.StringVar(&o.webConfig, "web.config.file", "", "exporter-toolkit web config `FILE`: TLS, client certificates, basic auth (see README, Metrics)")
	fs.BoolVar(&o.noRestart, "no-restart", false, "write the config but never restart containerd")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		return e.runDaemon(ctx, o)
	}
}

func applyFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	dryRun := fs.Bool("dry-run", false, "print the would-be config.toml to stdout and change nothing")
	diff := fs.Bool("diff", false, "print a unified diff of the change to stdout")
	noRestart := fs.Bool("no-restart", false, "write the config but don't restart containerd")
	noValidate := fs.Bool("no-validate", false, "with --dry-run: don't check the result with containerd (for machines without it)")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if *noValidate && !*dryRun {
			return fmt.Errorf("%w: --no-validate needs --dry-run: nothing unvalidated is ever written", errUsage)
		}
		opts := daemon.PlanOptions{Command: "apply", NoValidate: *noValidate}
		if *dryRun {
			return e.dryRun(ctx, opts, *diff)
		}
		return e.change(ctx, opts, *diff, *noRestart)
	}
}

func revertFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	dryRun := fs.Bool("dry-run", false, "print the would-be config.toml to stdout and change nothing")
	diff := fs.Bool("diff", false, "print a unified diff of the change to stdout")
	noRestart := fs.Bool("no-restart", false, "write the config but don't restart containerd")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		opts := daemon.PlanOptions{Command: "revert", Revert: true}
		if *dryRun {
			return e.dryRun(ctx, opts, *diff)
		}
		return e.change(ctx, opts, *diff, *noRestart)
	}
}

// dryRun plans and prints; it writes nothing and takes no lock.
func (e *env) dryRun(ctx context.Context, opts daemon.PlanOptions, diff bool) error {
	if !opts.NoValidate {
		var stop context.CancelFunc
		ctx, stop = interruptible(ctx)
		defer stop()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	plan, err := e.applier().Plan(ctx, opts)
	if err != nil {
		return err
	}
	e.printPlan(plan)
	if diff {
		fmt.Fprint(e.stdout, plan.Diff(e.cfg.ContainerdConfig))
	} else {
		e.stdout.Write(plan.Result.Out)
	}
	if opts.NoValidate {
		fmt.Fprintln(e.stderr, "dry run, not validated by containerd: nothing was written")
	} else {
		fmt.Fprintln(e.stderr, "dry run: nothing was written")
	}
	return nil
}

// printPlan says what a plan leaves out and changes.
func (e *env) printPlan(p *daemon.Plan) {
	for _, c := range p.Result.Conflicts {
		fmt.Fprintf(e.stderr, "warning: %s\n", c)
	}
	for _, r := range p.Readiness {
		if !r.Ready {
			fmt.Fprintf(e.stderr, "withheld: %s is not ready: %s\n", r.Name, r.Reason())
		}
	}
	if p.Mode == daemon.ModeDropIn && p.DropIn != nil {
		if r := p.Result; r.ImportAdded != nil {
			fmt.Fprintf(e.stderr, "%s: imports entry added for %s\n", e.cfg.ContainerdConfig, p.DropIn.Path)
		}
		if len(p.Result.Removed) > 0 {
			fmt.Fprintf(e.stderr, "%s: managed blocks moved to %s: %s\n", e.cfg.ContainerdConfig, p.DropIn.Path, strings.Join(p.Result.Removed, ", "))
		}
		if p.DropIn.Remove {
			fmt.Fprintf(e.stderr, "%s: removed (nothing to offer)\n", p.DropIn.Path)
		} else if p.DropIn.Result != nil {
			summarize(e.stderr, p.DropIn.Result)
		}
		return
	}
	if p.DropIn != nil && p.DropIn.Remove {
		fmt.Fprintf(e.stderr, "%s: removed (mode patch: the handlers are in %s)\n", p.DropIn.Path, e.cfg.ContainerdConfig)
	}
	if p.Result.ImportRemoved {
		fmt.Fprintf(e.stderr, "%s: the imports entry runtimeclassd added is removed\n", e.cfg.ContainerdConfig)
	}
	summarize(e.stderr, p.Result)
}

func summarize(w io.Writer, r *ctrdconfig.Result) {
	for _, row := range []struct {
		what  string
		names []string
	}{{"added", r.Added}, {"updated", r.Updated}, {"repaired (edited by hand)", r.Repaired}, {"removed", r.Removed}, {"unchanged", r.Unchanged}} {
		if len(row.names) > 0 {
			names := append([]string(nil), row.names...)
			sort.Strings(names)
			fmt.Fprintf(w, "%s: %s\n", row.what, strings.Join(names, ", "))
		}
	}
}

func validateFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	skipOwner := fs.Bool("skip-ownership", false, "don't check file owner and mode (for files not installed yet)")
	return func(_ context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%w: no files given", errUsage)
		}
		p, err := policy.LoadFiles(args, policy.Options{AllowedPrefixes: e.cfg.AllowedPathPrefixes, SkipOwnership: *skipOwner})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(e.stderr, line)
			}
			return exitError(exitFailure)
		}
		byFile := map[string][]string{}
		for _, h := range p.Handlers {
			byFile[h.Source] = append(byFile[h.Source], h.Name)
		}
		for _, f := range args {
			fmt.Fprintf(e.stdout, "%s: ok, handlers: %s\n", f, orNone(byFile[f]))
		}
		return nil
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func versionFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		printVersion(e.stdout)
		return nil
	}
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "runtimeclassd %s (revision %s, branch %s, %s %s/%s)\n", version, buildRevision(), branch, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
