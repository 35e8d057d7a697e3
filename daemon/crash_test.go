package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash-consistency suite: a child process (this test binary) runs
// what the daemon runs at start, Recover and a reconcile, and is killed
// with SIGKILL at every step it takes (the crashpoints of the state
// machine, of every file write, of the restart and of the verification)
// and at random moments. A second child then starts as the daemon would
// after systemd restarts it. After each pair:
//   - config.toml held the old or the candidate bytes after the kill, and
//     holds what an uninterrupted run leaves after the next start;
//   - no temporary file survives the next start;
//   - the kill cost at most one containerd restart more than an
//     uninterrupted run;
//   - containerd runs what config.toml holds, and the labels say true for
//     exactly the handlers that are written and served;
//   - nothing is left pending.
//
// containerd and systemd are faked by files (fileContainerd), so that what
// a killed process did to them survives it; the real ones are in the e2e.
//
// RUNTIMECLASSD_CRASH_RANDOM sets the random kills per scenario (default
// 20; make fault runs more).

// crashScenario is a change from one policy to another.
type crashScenario struct {
	name          string
	before, after map[string]string // policy files
	noConfig      bool              // config.toml does not exist at first
	bad           string            // a config containing this fails containerd's CRI
	// modeBefore and mode are the modes before and during the change
	// (drop-in ones run on a containerd 2.x with a version 3 config).
	modeBefore, mode string
}

var crashScenarios = []crashScenario{
	{name: "add", after: map[string]string{"kata.toml": kataPolicy}},
	{name: "update", before: map[string]string{"kata.toml": kataPolicy},
		after: map[string]string{"kata.toml": kataPolicy + "pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n"}},
	{name: "remove", before: map[string]string{"kata.toml": kataPolicy}},
	{name: "create", noConfig: true, after: map[string]string{"kata.toml": kataPolicy}},
	{name: "rollback", after: map[string]string{"kata.toml": kataPolicy}, bad: "handler=kata"},
	{name: "rollback-update", before: map[string]string{"kata.toml": kataPolicy},
		after: map[string]string{"kata.toml": kataPolicy, "broken.toml": "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n"}, bad: "handler=broken"},
	{name: "drop-in add", after: map[string]string{"kata.toml": kataPolicy}, modeBefore: ModeDropIn, mode: ModeDropIn},
	{name: "drop-in update", before: map[string]string{"kata.toml": kataPolicy},
		after:      map[string]string{"kata.toml": kataPolicy + "pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n"},
		modeBefore: ModeDropIn, mode: ModeDropIn},
	{name: "drop-in rollback", before: map[string]string{"kata.toml": kataPolicy},
		after: map[string]string{"kata.toml": kataPolicy, "broken.toml": "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n"},
		bad:   "handler=broken", modeBefore: ModeDropIn, mode: ModeDropIn},
	{name: "patch to drop-in", before: map[string]string{"kata.toml": kataPolicy}, after: map[string]string{"kata.toml": kataPolicy},
		modeBefore: ModePatch, mode: ModeDropIn},
	{name: "drop-in to patch", before: map[string]string{"kata.toml": kataPolicy}, after: map[string]string{"kata.toml": kataPolicy},
		modeBefore: ModeDropIn, mode: ModePatch},
}

// dropInConfig is the version 3 config.toml of the drop-in scenarios.
const dropInConfig = "version = 3\n# hand-written\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n  default_runtime_name = \"runc\"\n"

// crashNode is the directory a child runs in.
type crashNode struct{ dir string }

func (n crashNode) cfg() Config {
	cfg := DefaultConfig()
	cfg.ContainerdConfig = filepath.Join(n.dir, "etc/containerd/config.toml")
	cfg.DropIn = filepath.Join(n.dir, "etc/containerd/conf.d/50-runtimeclassd.toml")
	cfg.PolicyDir = filepath.Join(n.dir, "policy.d")
	cfg.StateDir = filepath.Join(n.dir, "state")
	cfg.NFDFeatureFile = filepath.Join(n.dir, "features.d/runtimeclassd")
	cfg.RestartMinInterval = 0
	if b, err := os.ReadFile(filepath.Join(n.dir, "mode")); err == nil {
		cfg.Mode = strings.TrimSpace(string(b))
	}
	return cfg
}

// setMode sets the mode the node's next child runs in.
func (n crashNode) setMode(mode string) {
	if mode == "" {
		mode = ModePatch
	}
	os.WriteFile(filepath.Join(n.dir, "mode"), []byte(mode), 0o644)
}

func (n crashNode) containerd() *fileContainerd {
	return &fileContainerd{file: filepath.Join(n.dir, "containerd.json"), config: n.cfg().ContainerdConfig, dropin: n.cfg().DropIn}
}

// fileContainerd is containerd under systemd, kept in a file so that it
// outlives the process that restarts it. A restart is one atomic write,
// as a real restart is one job systemd finishes whatever happens to the
// caller.
type fileContainerd struct {
	file, config, dropin string
	bad                  string
}

// reads is what a containerd started now would read: config.toml and the
// drop-in.
func (f *fileContainerd) reads() string {
	b, _ := os.ReadFile(f.config)
	d, _ := os.ReadFile(f.dropin)
	return string(b) + string(d)
}

type fileContainerdState struct {
	Running   string    `json:"running"` // the config it runs
	Up        bool      `json:"up"`
	StartedAt time.Time `json:"started_at"`
	Restarts  int       `json:"restarts"`
}

func (f *fileContainerd) load() fileContainerdState {
	var st fileContainerdState
	b, _ := os.ReadFile(f.file)
	json.Unmarshal(b, &st)
	return st
}

func (f *fileContainerd) RestartUnit(context.Context, string) error {
	st := f.load()
	st.Running, st.Up, st.StartedAt, st.Restarts = f.reads(), true, time.Now(), st.Restarts+1
	out, _ := json.Marshal(st)
	tmp := f.file + ".new"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.file)
}

func (f *fileContainerd) UnitActive(context.Context, string) (bool, error) { return f.load().Up, nil }
func (f *fileContainerd) StartLimitHit(context.Context, string) (bool, error) {
	return false, nil
}
func (f *fileContainerd) ResetFailed(context.Context, string) error { return nil }
func (f *fileContainerd) StartedAt(context.Context, string) (time.Time, error) {
	return f.load().StartedAt, nil
}

func (f *fileContainerd) Served(context.Context) ([]string, error) {
	st := f.load()
	if !st.Up {
		return nil, errors.New("containerd is not serving")
	}
	if f.bad != "" && strings.Contains(st.Running, f.bad) {
		return nil, errors.New("CRI plugin failed to load")
	}
	names := []string{"runc"}
	for _, m := range runtimeHeader.FindAllStringSubmatch(st.Running, -1) {
		if !slices.Contains(names, m[2]) {
			names = append(names, m[2])
		}
	}
	return names, nil
}

func (f *fileContainerd) Verify(ctx context.Context, handlers []string) error {
	served, err := f.Served(ctx)
	if err != nil {
		return err
	}
	for _, h := range handlers {
		if !slices.Contains(served, h) {
			return fmt.Errorf("CRI does not serve %s", h)
		}
	}
	return nil
}

// crashChildResult is what a child that was not killed prints last.
type crashChildResult struct {
	Outcome string `json:"outcome"`
	Err     string `json:"err,omitempty"`
}

// TestCrashChild is the process the crash suite starts and kills.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("RUNTIMECLASSD_CRASH_NODE")
	if dir == "" {
		t.Skip("run by TestCrashConsistency")
	}
	n := crashNode{dir}
	cd := n.containerd()
	cd.bad = os.Getenv("RUNTIMECLASSD_CRASH_BAD")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &Reconciler{
		Applier:   &Applier{Cfg: n.cfg(), Log: log, Validator: fakeValidator{major: 2}},
		Restarter: cd, Verifier: cd, Log: log,
		Sleep: func(context.Context, time.Duration) error { return nil },
	}
	fmt.Println("started")
	ctx := context.Background()
	res := crashChildResult{Outcome: "none"}
	if rep := rec.Recover(ctx); rep != nil {
		res.Outcome = rep.Outcome
	}
	rep := rec.Reconcile(ctx)
	res.Outcome = rep.Outcome
	if rep.Err != nil {
		res.Err = rep.Err.Error()
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	os.Exit(0)
}

// runChild runs a child in dir. With at, it must die by SIGKILL there;
// with killAfter >= 0, the parent kills it that long after it started.
// It returns the child's result (nil if it was killed).
func runChild(t *testing.T, dir, bad, at, trace string, killAfter time.Duration) *crashChildResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "RUNTIMECLASSD_CRASH_NODE="+dir, "RUNTIMECLASSD_CRASH_BAD="+bad,
		"RUNTIMECLASSD_CRASH_AT="+at, "RUNTIMECLASSD_CRASH_TRACE="+trace, "GORACE=halt_on_error=1 atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(out)
	line, _ := rd.ReadString('\n')
	if killAfter >= 0 && line == "started\n" {
		time.Sleep(killAfter)
		cmd.Process.Kill()
	}
	rest, _ := io.ReadAll(rd)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
		return nil
	}
	if at != "" {
		t.Fatalf("the child was not killed at %q: %v\n%s%s\n%s", at, err, line, rest, &stderr)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s%s\n%s", err, line, rest, &stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	var res crashChildResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("child output %q: %v\n%s", rest, err, &stderr)
	}
	return &res
}

// prepare makes the scenario's starting node in dir: the config and the
// containerd that runs it, applied from the "before" policy, then the
// "after" policy in place. It returns the config's bytes then (nil if
// none) and the candidate an apply will write.
func (sc crashScenario) prepare(t *testing.T, dir string) (old, candidate []byte) {
	t.Helper()
	n := crashNode{dir}
	cfg := n.cfg()
	for _, d := range []string{filepath.Dir(cfg.ContainerdConfig), cfg.PolicyDir} {
		os.MkdirAll(d, 0o755)
	}
	if !sc.noConfig {
		body := handwritten
		if sc.mode == ModeDropIn || sc.modeBefore == ModeDropIn {
			body = dropInConfig
		}
		os.WriteFile(cfg.ContainerdConfig, []byte(body), 0o644)
	}
	n.setMode(sc.modeBefore)
	cd := n.containerd()
	cd.RestartUnit(context.Background(), "")
	writePolicy := func(files map[string]string) {
		entries, _ := os.ReadDir(cfg.PolicyDir)
		for _, e := range entries {
			os.Remove(filepath.Join(cfg.PolicyDir, e.Name()))
		}
		for name, body := range files {
			os.WriteFile(filepath.Join(cfg.PolicyDir, name), []byte(body), 0o644)
		}
	}
	writePolicy(sc.before)
	if res := runChild(t, dir, "", "", "", -1); res.Outcome == OutcomeError || res.Outcome == OutcomeInvalid {
		t.Fatalf("preparing %s: %+v", sc.name, res)
	}
	writePolicy(sc.after)
	n.setMode(sc.mode)
	cfg = n.cfg()
	old = []byte(n.containerd().reads())
	a := &Applier{Cfg: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Validator: fakeValidator{major: 2}}
	plan, err := a.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What containerd would read once the plan is written.
	next := plan.Original
	if plan.Result.Changed {
		next = plan.Result.Out
	}
	d, _ := os.ReadFile(cfg.DropIn)
	if plan.DropIn != nil {
		d = plan.DropIn.Out
	}
	return old, append(append([]byte{}, next...), d...)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from+"/.", to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// crashOutcome is what one kill and the next start came to.
type crashOutcome struct {
	killed  bool
	extra   int // restarts beyond the uninterrupted run's
	problem string
}

// TestCrashConsistency runs the suite; it reports its counts.
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash suite starts hundreds of processes")
	}
	t.Parallel()
	random := 20
	if v, err := strconv.Atoi(os.Getenv("RUNTIMECLASSD_CRASH_RANDOM")); err == nil {
		random = v
	}
	type counts struct{ steps, stepRuns, randomRuns, randomKilled, maxExtra int }
	results := make(chan counts, len(crashScenarios))
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range crashScenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				var c counts
				// Every run happens in the same directory (work), from a copy
				// of the prepared node: the files hold absolute paths (the
				// drop-in's imports entry, the backups).
				work, template := filepath.Join(t.TempDir(), "node"), t.TempDir()
				reset := func() string {
					t.Helper()
					os.RemoveAll(work)
					os.Mkdir(work, 0o755)
					copyTree(t, template, work)
					return work
				}
				os.Mkdir(work, 0o755)
				old, candidate := sc.prepare(t, work)
				copyTree(t, work, template)
				// The uninterrupted run: its steps, its result and its
				// restarts are the reference.
				ref := reset()
				trace := filepath.Join(t.TempDir(), "trace")
				start := time.Now()
				refRes := runChild(t, ref, sc.bad, "", trace, -1)
				took := time.Since(start)
				refNode := crashNode{ref}
				final := []byte(refNode.containerd().reads())
				refRestarts := refNode.containerd().load().Restarts
				if sc.bad != "" && !bytes.Equal(final, old) || sc.bad == "" && !bytes.Equal(final, candidate) {
					t.Fatalf("the uninterrupted run ended %s with:\n%s\n--- candidate:\n%s\n--- old:\n%s", refRes.Outcome, final, candidate, old)
				}
				steps := traceSteps(t, trace)
				c.steps = len(steps)
				check := func(label, at string, killAfter time.Duration) crashOutcome {
					dir := reset()
					o := crashOutcome{}
					o.killed = runChild(t, dir, sc.bad, at, "", killAfter) == nil
					n := crashNode{dir}
					if b := n.containerd().reads(); !twoFileState(b, old, candidate) {
						o.problem = fmt.Sprintf("after the kill the files are neither the old nor the candidate bytes:\n%s\n--- old:\n%s\n--- candidate:\n%s", b, old, candidate)
						return o
					}
					res := runChild(t, dir, sc.bad, "", "", -1)
					if res.Outcome == OutcomeError {
						o.problem = "the next start failed: " + res.Err
						return o
					}
					o.extra = n.containerd().load().Restarts - refRestarts
					o.problem = checkConverged(n, sc.bad, final)
					return o
				}
				for i, at := range steps {
					c.stepRuns++
					if o := check("step", at, -1); o.problem != "" {
						t.Errorf("killed at %q (step %d of %d): %s", at, i+1, len(steps), o.problem)
					} else {
						c.maxExtra = max(c.maxExtra, o.extra)
						if o.extra > 1 {
							t.Errorf("killed at %q: %d restarts more than an uninterrupted run", at, o.extra)
						}
					}
				}
				for range random {
					c.randomRuns++
					d := time.Duration(rand.Int64N(int64(took) + 1))
					o := check("random", "", d)
					if o.killed {
						c.randomKilled++
					}
					if o.problem != "" {
						t.Errorf("killed %v after start: %s", d, o.problem)
					} else if o.extra > 1 {
						t.Errorf("killed %v after start: %d restarts more than an uninterrupted run", d, o.extra)
					}
					c.maxExtra = max(c.maxExtra, o.extra)
				}
				t.Logf("%s: %d steps, each killed; %d random kills (%d landed); at most %d extra restart(s)", sc.name, c.steps, random, c.randomKilled, c.maxExtra)
				results <- c
			})
		}
	})
	close(results)
	var total counts
	for c := range results {
		total.steps += c.steps
		total.stepRuns += c.stepRuns
		total.randomRuns += c.randomRuns
		total.randomKilled += c.randomKilled
		total.maxExtra = max(total.maxExtra, c.maxExtra)
	}
	fmt.Printf("crash suite: %d runs (%d at every step, %d at random moments, %d of which landed before the end), %d scenarios, %d failures, at most %d extra restart(s)\n",
		total.stepRuns+total.randomRuns, total.stepRuns, total.randomRuns, total.randomKilled, len(crashScenarios), boolInt(t.Failed()), total.maxExtra)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// traceSteps turns a trace into one entry per hit: "STEP#N" for the Nth
// hit of STEP.
func traceSteps(t *testing.T, trace string) []string {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var out []string
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		seen[s]++
		out = append(out, fmt.Sprintf("%s#%d", s, seen[s]))
	}
	return out
}

// checkConverged checks a node after its next start, and says what is
// wrong ("" if nothing).
func checkConverged(n crashNode, bad string, final []byte) string {
	cfg := n.cfg()
	cd := n.containerd()
	cd.bad = bad
	disk := cd.reads()
	if disk != string(final) {
		return fmt.Sprintf("after the next start the files are not what an uninterrupted run leaves:\n%s", disk)
	}
	st := cd.load()
	if !st.Up || st.Running != disk {
		return "containerd does not run what the files hold"
	}
	for _, dir := range []string{filepath.Dir(cfg.ContainerdConfig), filepath.Dir(cfg.DropIn), cfg.StateDir, filepath.Dir(cfg.NFDFeatureFile), filepath.Join(cfg.StateDir, "backups")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				return "a temporary file survived the next start: " + filepath.Join(dir, e.Name())
			}
		}
	}
	state, err := LoadState(cfg.StateDir)
	if err != nil || state == nil || state.Pending != nil {
		return fmt.Sprintf("state after the next start: %+v %v", state, err)
	}
	served, _ := cd.Served(context.Background())
	written, _ := managedNames(cfg.ContainerdConfig)
	inDropIn, _ := managedNames(cfg.DropIn)
	written = append(written, inDropIn...)
	labels, _ := os.ReadFile(cfg.NFDFeatureFile)
	for _, h := range state.Handlers {
		want := slices.Contains(served, h.Name) && slices.Contains(written, h.Name)
		line := fmt.Sprintf("%s%s=%t\n", NFDLabelPrefix, h.Name, want)
		if !bytes.Contains(labels, []byte(line)) {
			return fmt.Sprintf("labels do not say %q:\n%s", strings.TrimSpace(line), labels)
		}
	}
	return ""
}

// twoFileState reports whether what containerd would read (config.toml and
// the drop-in, joined) is the old state, the candidate, or, between the
// two writes of a two-file apply, the state where the file that gains
// definitions is written and the other not yet: a handler defined twice,
// identically, never missing. That last case is recognised by every
// handler of the candidate being defined.
func twoFileState(b string, old, candidate []byte) bool {
	if b == string(old) || b == string(candidate) {
		return true
	}
	for _, m := range runtimeHeader.FindAllStringSubmatch(string(candidate), -1) {
		if !strings.Contains(b, "handler="+m[2]+" ") {
			return false
		}
	}
	return len(runtimeHeader.FindAllStringSubmatch(string(candidate), -1)) > 0
}
