// Command runtimeclassd keeps containerd's CRI runtime handlers in line with
// the policy in /etc/runtimeclassd/policy.d. This file only parses flags,
// wires the packages together and maps outcomes to exit codes.
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
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/daemon"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

type command struct {
	name, args, help string
	flags            func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// env is what every command gets: the merged config, the logger and the
// output streams.
type env struct {
	cfg            daemon.Config
	log            *slog.Logger
	stdout, stderr io.Writer
}

var commands = []command{
	{"run", "[--web.listen-address ADDR] [--web.config.file FILE]", "the daemon: watch, reconcile, restart containerd, verify, roll back", runFlags},
	{"apply", "[--dry-run] [--diff] [--no-restart]", "merge the policy's handlers into containerd's config", applyFlags},
	{"revert", "[--dry-run] [--no-restart]", "remove every block runtimeclassd manages from containerd's config", revertFlags},
	{"check", "[--output text|json]", "host readiness of each handler (exit 0 only if all are ready)", checkFlags},
	{"validate", "FILE...", "lint policy files", validateFlags},
	{"runtimeclass", "", "print a RuntimeClass manifest for each handler", runtimeclassFlags},
	{"status", "", "what is managed, and the last outcome", statusFlags},
	{"version", "", "print the version", versionFlags},
}

// globalFlags are accepted before and after the command name.
type globalFlags struct {
	configFile string
	logLevel   string
	cfg        daemon.Config
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	d := daemon.DefaultConfig()
	fs.StringVar(&g.configFile, "config", "/etc/runtimeclassd/config.toml", "daemon config `FILE` (missing means defaults)")
	fs.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&g.cfg.ContainerdConfig, "containerd-config", d.ContainerdConfig, "containerd's config `FILE`")
	fs.StringVar(&g.cfg.PolicyDir, "policy-dir", d.PolicyDir, "policy `DIR`")
	fs.StringVar(&g.cfg.StateDir, "state-dir", d.StateDir, "state and backups `DIR`")
	fs.StringVar(&g.cfg.ShimPath, "shim-path", d.ShimPath, "colon-separated `DIRS` where shims are looked up")
	fs.StringVar(&g.cfg.HostRoot, "host-root", d.HostRoot, "`DIR` prefixed to /dev, /sys, /proc and /etc/kata-containers lookups")
	fs.StringVar(&g.cfg.ContainerdBin, "containerd-bin", d.ContainerdBin, "containerd `FILE`, used to validate configs")
	fs.StringVar(&g.cfg.ContainerdAddress, "containerd-address", d.ContainerdAddress, "containerd's gRPC `SOCK`")
	fs.StringVar(&g.cfg.ContainerdUnit, "containerd-unit", d.ContainerdUnit, "containerd's systemd `NAME`")
	fs.StringVar(&g.cfg.NFDFeatureFile, "nfd-feature-file", d.NFDFeatureFile, "Node Feature Discovery feature `FILE` (\"\" disables)")
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

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: runtimeclassd [global flags] COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %-38s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs := flag.NewFlagSet("runtimeclassd", flag.ContinueOnError)
	new(globalFlags).register(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
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
		fmt.Fprintf(stderr, "runtimeclassd: %v\n", err)
		usage(stderr)
		return exitUsage
	}
	top.Visit(func(f *flag.Flag) { set[f.Name] = true })
	rest := top.Args()
	if len(rest) == 0 {
		usage(stderr)
		return exitUsage
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == rest[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "runtimeclassd: unknown command %q\n", rest[0])
		usage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("runtimeclassd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The same flag values, so that global flags may come after the
	// command name too.
	top.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	run := cmd.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: runtimeclassd %s %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(rest[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		fmt.Fprintf(stderr, "runtimeclassd: --log-level: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := g.merge(set)
	if err != nil {
		fmt.Fprintf(stderr, "runtimeclassd: %v\n", err)
		return exitFailure
	}
	e := &env{cfg: cfg, log: log, stdout: stdout, stderr: stderr}
	if err := run(ctx, e, fs.Args()); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "runtimeclassd %s: %v\n", cmd.name, strings.TrimPrefix(err.Error(), "usage: "))
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
		return e.change(ctx, daemon.PlanOptions{Command: "apply", NoValidate: *noValidate}, *dryRun, *diff, *noRestart)
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
		return e.change(ctx, daemon.PlanOptions{Command: "revert", Revert: true}, *dryRun, *diff, *noRestart)
	}
}

// change runs apply or revert. The config or diff goes to stdout; what
// happened goes to stderr. Anything that writes takes the daemon's own path
// (lock, backup, compare-and-swap write, state, labels from what containerd
// serves), with or without the restart.
func (e *env) change(ctx context.Context, opts daemon.PlanOptions, dryRun, diff, noRestart bool) error {
	if dryRun {
		return e.dryRun(ctx, opts, diff)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rec, closeFn := e.reconciler(!noRestart)
	defer closeFn()
	rep := rec.ReconcileWith(ctx, opts)
	if rep.Plan != nil {
		e.printPlan(rep.Plan)
		if diff {
			fmt.Fprint(e.stdout, rep.Plan.Diff(e.cfg.ContainerdConfig))
		}
	}
	switch {
	case rep.Err != nil && rep.Outcome != daemon.OutcomeHeld:
		return rep.Err
	case rep.Outcome == daemon.OutcomeUnchanged:
		fmt.Fprintf(e.stderr, "%s is up to date; nothing written\n", e.cfg.ContainerdConfig)
	case rep.Restarted:
		fmt.Fprintf(e.stderr, "wrote %s (%s), restarted %s and verified it serves %s\n", e.cfg.ContainerdConfig, backupNote(rep.Backup), e.cfg.ContainerdUnit, servedNote(rep))
	case noRestart:
		fmt.Fprintf(e.stderr, "wrote %s (%s)\n", e.cfg.ContainerdConfig, backupNote(rep.Backup))
		fmt.Fprintf(e.stderr, "not restarting containerd (--no-restart); the change takes effect at its next restart\n")
	default:
		fmt.Fprintf(e.stderr, "wrote %s (%s); %s is not running, so it was not started\n", e.cfg.ContainerdConfig, backupNote(rep.Backup), e.cfg.ContainerdUnit)
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

// dryRun plans and prints; it writes nothing and takes no lock.
func (e *env) dryRun(ctx context.Context, opts daemon.PlanOptions, diff bool) error {
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
		fmt.Fprintf(e.stdout, "runtimeclassd %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
}
