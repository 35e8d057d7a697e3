// Command bench runs runtimeclassd's performance figures (issue 12) against
// their peers and goals, side by side in one run, prints the table
// (figure, ours, peer or floor, ratio, goal, met), and with -docs rewrites
// the results block of docs/BENCHMARKS.md and draws its two plots.
//
// Every whole-process figure runs runtimeclassd and its peer in the same
// rounds, in a random order each round, and reports the median over rounds
// of the ratio (or difference) within a round, so that other work on a
// shared machine weighs on both sides alike. The reaction and idle figures
// come from real nodes (make measure writes them as JSON; -e2e reads them).
// It is a module of its own, so that runtimeclassd doesn't carry the
// plotting library.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type options struct {
	rcd, nvctk, ctrd1, ctrd2 string
	// rcdPIE is the same build as rcd, position-independent; cliFlag and
	// cliKingpin the two command-line shapes (cliflag, clikingpin). Each
	// adds rows to the details when set.
	rcdPIE, cliFlag, cliKingpin string
	// packagedConfig is packaging/config.toml: its settings (mode) can
	// change what an apply runs.
	packagedConfig      string
	rounds, scaleRounds int
	e2e, docs, work     string
}

func main() {
	var o options
	flag.StringVar(&o.rcd, "rcd", "bin/runtimeclassd", "runtimeclassd (the command people run)")
	flag.StringVar(&o.nvctk, "nvidia-ctk", "", "nvidia-ctk v1.20.2")
	flag.StringVar(&o.ctrd1, "containerd1", "/usr/bin/containerd", "containerd 1.6")
	flag.StringVar(&o.ctrd2, "containerd2", "", "containerd 2.4.2")
	flag.StringVar(&o.rcdPIE, "rcd-pie", "", "runtimeclassd built with -buildmode=pie (details: what PIE costs)")
	flag.StringVar(&o.cliFlag, "cli-flag", "", "tools/bench/cliflag, built (details: the command line's library)")
	flag.StringVar(&o.cliKingpin, "cli-kingpin", "", "tools/bench/clikingpin, built")
	flag.StringVar(&o.packagedConfig, "packaged-config", "", "packaging/config.toml, to count containerd's runs with the shipped settings too")
	flag.IntVar(&o.rounds, "rounds", 100, "rounds of the whole-process comparisons")
	flag.IntVar(&o.scaleRounds, "scale-rounds", 25, "rounds of the scale series")
	flag.StringVar(&o.e2e, "e2e", "", "the real-node figures (JSON written by make measure); empty: not run")
	flag.StringVar(&o.docs, "docs", "", "docs/BENCHMARKS.md: rewrite its results block and the plots next to it")
	flag.Parse()
	if flag.Arg(0) == "compare" {
		if err := compare(flag.Args()[1:], o.rounds, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if o.nvctk == "" || o.ctrd2 == "" {
		fmt.Fprintln(os.Stderr, "bench: -nvidia-ctk and -containerd2 are needed (scripts/bench.sh sets them)")
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// compare is `bench compare NAME=COMMAND...`: the same interleaved
// measurement for any commands (split at spaces), each against the first.
func compare(args []string, rounds int, out io.Writer) error {
	var jobs []job
	for _, a := range args {
		name, cmd, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=COMMAND", a)
		}
		jobs = append(jobs, job{name, strings.Fields(cmd)})
	}
	if len(jobs) < 2 {
		return errors.New("compare needs two commands or more")
	}
	t, err := interleave(jobs, rounds, 10, 7)
	if err != nil {
		return err
	}
	base := t[jobs[0].name]
	for _, j := range jobs {
		tj := t[j.name]
		r, lo, hi := pairedRatio(tj.wall, base.wall)
		rc, _, _ := pairedRatio(tj.cpu, base.cpu)
		fmt.Fprintf(out, "%-28s wall %8s  cpu %8s  faults %5d  vs %s: wall %.3f (IQR %.3f-%.3f), cpu %.3f\n", j.name, ms(median(tj.wall)), ms(median(tj.cpu)), medianInt(tj.faults), jobs[0].name, r, lo, hi, rc)
	}
	return nil
}

// row is one line of the table.
type row struct {
	figure, ours, peer, ratio, goal string
	met                             string // yes, NO, or — for a figure without a goal
}

func metWord(ok bool) string {
	if ok {
		return "yes"
	}
	return "**NO**"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func run(o options, out io.Writer) error {
	work, err := os.MkdirTemp("", "runtimeclassd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	o.work = work
	in, err := makeInputs(work, o.ctrd1, o.ctrd2)
	if err != nil {
		return err
	}
	load0 := loadavg()
	started := time.Now()
	var rows []row
	var details []string

	// Goal 1: the one-shot CLI against nvidia-ctk, like for like.
	fmt.Fprintln(os.Stderr, "bench: goal 1, whole process against nvidia-ctk...")
	rcd := func(config, pol, ctrd string, args ...string) []string {
		return append([]string{o.rcd, "--config", "/dev/null", "--containerd-config", config, "--policy-dir", pol,
			"--state-dir", filepath.Join(work, "state"), "--containerd-bin", ctrd, "--nfd-feature-file", ""}, args...)
	}
	nv := func(config string) []string {
		return []string{o.nvctk, "runtime", "configure", "--runtime=containerd", "--config=" + config, "--dry-run"}
	}
	cases := []struct{ name, config string }{
		{"containerd 1.6's default config", in.def16}, {"containerd 2.4.2's default config", in.def24}, {"a 5,000-line config", in.big}}
	jobs := []job{{"ours version", []string{o.rcd, "version"}}, {"peer version", []string{o.nvctk, "--version"}}}
	for _, c := range cases {
		jobs = append(jobs, job{"ours " + c.name, rcd(c.config, in.policy1, o.ctrd1, "apply", "--dry-run", "--no-validate")},
			job{"peer " + c.name, nv(c.config)})
	}
	if o.rcdPIE != "" {
		jobs = append(jobs, job{"pie version", []string{o.rcdPIE, "version"}},
			job{"pie " + cases[0].name, append([]string{o.rcdPIE}, rcd(cases[0].config, in.policy1, o.ctrd1, "apply", "--dry-run", "--no-validate")[1:]...)})
	}
	if o.cliFlag != "" && o.cliKingpin != "" {
		jobs = append(jobs, job{"cli flag", []string{o.cliFlag, "version"}}, job{"cli kingpin", []string{o.cliKingpin, "version"}})
	}
	t1, err := interleave(jobs, o.rounds, 10, 1)
	if err != nil {
		return err
	}
	pair := func(figure, a, b string) {
		ta, tb := t1[a], t1[b]
		r, lo, hi := pairedRatio(ta.wall, tb.wall)
		rc, _, _ := pairedRatio(ta.cpu, tb.cpu)
		rows = append(rows, row{figure, ms(median(ta.wall)), ms(median(tb.wall)), fmt.Sprintf("%.2f (IQR %.2f–%.2f)", r, lo, hi), "≤ 0.50", metWord(r <= 0.5)})
		details = append(details, fmt.Sprintf("| %s | %s / %s | %.2f | %d / %d |", figure, ms(median(ta.cpu)), ms(median(tb.cpu)), rc, medianInt(ta.faults), medianInt(tb.faults)))
	}
	pair("1. `version` vs `nvidia-ctk --version`", "ours version", "peer version")
	for _, c := range cases {
		pair("1. apply --dry-run --no-validate, "+c.name, "ours "+c.name, "peer "+c.name)
	}
	var extra []string
	versus := func(what, a, b string) {
		ta, tb := t1[a], t1[b]
		r, lo, hi := pairedRatio(ta.wall, tb.wall)
		d, _, _ := pairedDiff(ta.wall, tb.wall)
		extra = append(extra, fmt.Sprintf("| %s | %s / %s | %.2f (IQR %.2f–%.2f), %+.2f ms | %d / %d |", what, ms(median(ta.wall)), ms(median(tb.wall)), r, lo, hi, float64(d)/1e6, medianInt(ta.faults), medianInt(tb.faults)))
	}
	if o.rcdPIE != "" {
		versus("PIE build / this build, `version`", "pie version", "ours version")
		versus("PIE build / this build, apply --dry-run --no-validate (1.6's default config)", "pie "+cases[0].name, "ours "+cases[0].name)
	}
	if o.cliFlag != "" && o.cliKingpin != "" {
		versus("kingpin/v2 + prometheus/common/version / flag, the same command line, `version`", "cli kingpin", "cli flag")
	}

	// Goal 2: a validated dry run against containerd's own config dump.
	fmt.Fprintln(os.Stderr, "bench: goal 2, validated apply against config dump...")
	vcases := []struct{ name, config, ctrd string }{{"containerd 1.6", in.def16, o.ctrd1}, {"containerd 2.4.2", in.def24, o.ctrd2}}
	jobs = nil
	for _, c := range vcases {
		jobs = append(jobs, job{"ours " + c.name, rcd(c.config, in.policy1, c.ctrd, "apply", "--dry-run")},
			job{"dump " + c.name, []string{c.ctrd, "--config", c.config, "config", "dump"}})
	}
	t2, err := interleave(jobs, o.rounds/2, 5, 2)
	if err != nil {
		return err
	}
	for _, c := range vcases {
		runs, err := countRuns(work, c.ctrd, rcd(c.config, in.policy1, "COUNTING", "apply", "--dry-run"))
		if err != nil {
			return err
		}
		ta, tb := t2["ours "+c.name], t2["dump "+c.name]
		d, lo, hi := pairedDiff(ta.wall, tb.wall)
		rows = append(rows, row{"2. apply --dry-run (validated) on " + c.name + "'s default config", ms(median(ta.wall)),
			"config dump " + ms(median(tb.wall)), fmt.Sprintf("+%.2f ms (IQR %+.2f–%+.2f)", float64(d)/1e6, float64(lo)/1e6, float64(hi)/1e6),
			"≤ dump + 3 ms", metWord(d <= 3*time.Millisecond)})
		rows = append(rows, row{"2. containerd runs per validated apply, " + c.name, fmt.Sprint(runs), "", "", "1", metWord(runs == 1)})
		if o.packagedConfig != "" {
			args := rcd(c.config, in.policy1, "COUNTING", "apply", "--dry-run")
			args[2] = o.packagedConfig
			runs, err := countRuns(work, c.ctrd, args)
			if err != nil {
				return err
			}
			rows = append(rows, row{"2. the same with the packaged config.toml (mode = auto), " + c.name, fmt.Sprint(runs), "", "", "1", metWord(runs == 1)})
		}
	}

	// Goals 3 and 4: from the real nodes.
	rows = append(rows, e2eRows(o.e2e)...)

	// Goal 5: scale, fitted.
	fmt.Fprintln(os.Stderr, "bench: goal 5, scale...")
	jobs = nil
	lines := map[int]float64{}
	for _, k := range sizeFactors {
		b, _ := os.ReadFile(in.scaled[k])
		lines[k] = float64(bytes.Count(b, []byte("\n")))
		jobs = append(jobs, job{fmt.Sprintf("ours size %d", k), rcd(in.scaled[k], in.policy1, o.ctrd1, "apply", "--dry-run", "--no-validate")},
			job{fmt.Sprintf("peer size %d", k), nv(in.scaled[k])})
	}
	for _, n := range handlerCounts {
		jobs = append(jobs, job{fmt.Sprintf("ours handlers %d", n), rcd(in.def16, in.handlers[n], o.ctrd1, "apply", "--dry-run", "--no-validate")})
	}
	t5, err := interleave(jobs, o.scaleRounds, 3, 5)
	if err != nil {
		return err
	}
	var sizeOurs, sizePeer, hand series
	sizeOurs.label, sizePeer.label, hand.label = "runtimeclassd apply --dry-run --no-validate", "nvidia-ctk runtime configure --dry-run", "runtimeclassd apply --dry-run --no-validate"
	for _, k := range sizeFactors {
		sizeOurs.ns = append(sizeOurs.ns, lines[k])
		sizeOurs.ms = append(sizeOurs.ms, float64(median(t5[fmt.Sprintf("ours size %d", k)].wall))/1e6)
		sizePeer.ns = append(sizePeer.ns, lines[k])
		sizePeer.ms = append(sizePeer.ms, float64(median(t5[fmt.Sprintf("peer size %d", k)].wall))/1e6)
	}
	for _, n := range handlerCounts {
		hand.ns = append(hand.ns, float64(n))
		hand.ms = append(hand.ms, float64(median(t5[fmt.Sprintf("ours handlers %d", n)].wall))/1e6)
	}
	sizeOurs.fit, sizePeer.fit, hand.fit = fitPower(sizeOurs.ns, sizeOurs.ms), fitPower(sizePeer.ns, sizePeer.ms), fitPower(hand.ns, hand.ms)
	fitText := func(f powerFit) string {
		return fmt.Sprintf("t = %.2f + %.2g·n^**%.2f** ms (R² %.3f)", f.a, f.b, f.k, f.r2)
	}
	rows = append(rows,
		row{fmt.Sprintf("5. apply vs config size, %.0f–%.0f lines (1×–100× default)", sizeOurs.ns[0], sizeOurs.ns[len(sizeOurs.ns)-1]), fitText(sizeOurs.fit), "nvidia-ctk: " + fitText(sizePeer.fit),
			fmt.Sprintf("%.2f at 100×", sizeOurs.ms[len(sizeOurs.ms)-1]/sizePeer.ms[len(sizePeer.ms)-1]), "exponent ≤ 1.10", metWord(sizeOurs.fit.k <= 1.10)},
		row{"5. apply vs handlers, 1–1,000", fitText(hand.fit), "", "", "exponent ≤ 1.10", metWord(hand.fit.k <= 1.10)})

	machine := machineInfo(o, load0, loadavg(), time.Since(started))
	table := renderTable(rows, details, extra, machine)
	fmt.Fprint(out, table)
	for _, s := range []series{sizeOurs, sizePeer, hand} {
		fmt.Fprintf(out, "\n%s: n = %v\n  medians (ms) = %.2f\n  fit: a = %.3f ms, b = %.4g ms, exponent k = %.3f, R² = %.4f\n", s.label, s.ns, s.ms, s.fit.a, s.fit.b, s.fit.k, s.fit.r2)
	}
	if o.docs == "" {
		return nil
	}
	dir := filepath.Dir(o.docs)
	if err := plotScale(filepath.Join(dir, "bench-size.png"), "apply --dry-run against config size (one handler)", "config.toml lines", []series{sizeOurs, sizePeer}); err != nil {
		return err
	}
	if err := plotScale(filepath.Join(dir, "bench-handlers.png"), "apply --dry-run against handler count (containerd 1.6's default config)", "handlers in the policy", []series{hand}); err != nil {
		return err
	}
	return rewriteBlock(o.docs, table)
}

// countRuns runs args once, with the real containerd binary in place of
// COUNTING, under strace, and returns how many times containerd was
// executed. Not through a counting wrapper script: runtimeclassd reads the
// binary's Go build info to tell containerd's version (mode auto), and a
// script would make it ask containerd instead, a run the real binary
// doesn't cost.
func countRuns(work, ctrd string, args []string) (int, error) {
	trace := filepath.Join(work, "execve.trace")
	os.Remove(trace)
	for i, a := range args {
		if a == "COUNTING" {
			args[i] = ctrd
		}
	}
	cmd := append([]string{"-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace}, args...)
	if out, err := exec.Command("strace", cmd...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("strace %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `execve("`+ctrd+`"`) && strings.HasSuffix(strings.TrimSpace(l), "= 0") {
			n++
		}
	}
	return n, nil
}

// e2eFigures is what make measure writes (test/e2e/measure_test.go).
type e2eFigures struct {
	Reaction []struct {
		Containerd  string  `json:"containerd"`
		Changes     int     `json:"changes"`
		DebounceMS  float64 `json:"debounce_ms"`
		P50MS       float64 `json:"p50_ms"`
		P99MS       float64 `json:"p99_ms"`
		DumpP50MS   float64 `json:"dump_p50_ms"`
		DumpP99MS   float64 `json:"dump_p99_ms"`
		NoopResyncs int     `json:"noop_resyncs"`
		NoopExecs   int     `json:"noop_execs"`
		NoopDumps   int     `json:"noop_dumps"`
		NoopWrites  int     `json:"noop_writes"`
		// NoopLabelWrites are the NFD feature file's expiry refreshes.
		NoopLabelWrites int `json:"noop_label_writes"`
	} `json:"reaction"`
	Idle *struct {
		Containerd    string  `json:"containerd"`
		RSSKiB        int     `json:"rss_kib"`
		RSSAnonKiB    int     `json:"rss_anon_kib"`
		RSSFileKiB    int     `json:"rss_file_kib"`
		WindowS       float64 `json:"window_s"`
		Wakeups       int     `json:"wakeups"`
		WatchdogPings int     `json:"watchdog_pings"`
		WatchdogSec   float64 `json:"watchdog_sec"`
	} `json:"idle"`
}

func e2eRows(path string) []row {
	if path == "" {
		return []row{{"3. reaction p99, 4. idle", "not run (no -e2e)", "", "", "", "—"}}
	}
	b, err := os.ReadFile(path)
	var f e2eFigures
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		return []row{{"3. reaction p99, 4. idle", "not measured: " + err.Error(), "", "", "", "**NO**"}}
	}
	var rows []row
	for _, r := range f.Reaction {
		rows = append(rows, row{fmt.Sprintf("3. reaction (policy write → config on disk − %.0f ms debounce), p99 of %d, %s, real node", r.DebounceMS, r.Changes, r.Containerd),
			fmt.Sprintf("%.1f ms (p50 %.1f)", r.P99MS, r.P50MS), fmt.Sprintf("config dump p99 %.1f ms (p50 %.1f)", r.DumpP99MS, r.DumpP50MS),
			fmt.Sprintf("%+.1f ms", r.P99MS-r.DumpP99MS), "≤ dump p99 + 5 ms", metWord(r.P99MS <= r.DumpP99MS+5)})
		rows = append(rows, row{fmt.Sprintf("3. resync with nothing to do, %s: config dumps / writes over %d resyncs", r.Containerd, r.NoopResyncs),
			fmt.Sprintf("%d dumps, %d writes (containerd's binary run %d times; %d NFD expiry refreshes)", r.NoopDumps, r.NoopWrites, r.NoopExecs, r.NoopLabelWrites), "", "", "0 and 0", metWord(r.NoopDumps == 0 && r.NoopWrites == 0)})
	}
	if i := f.Idle; i != nil {
		rows = append(rows, row{"4. idle RSS after the first reconcile, " + i.Containerd + ", real node",
			fmt.Sprintf("%.1f MiB (anon %.1f, file %.1f)", float64(i.RSSKiB)/1024, float64(i.RSSAnonKiB)/1024, float64(i.RSSFileKiB)/1024), "", "", "≤ 15 MiB", metWord(i.RSSKiB <= 15*1024)})
		rows = append(rows, row{fmt.Sprintf("4. wake-ups over %.0f s idle (WatchdogSec=%.0f)", i.WindowS, i.WatchdogSec),
			fmt.Sprintf("%d", i.Wakeups), fmt.Sprintf("watchdog pings %d", i.WatchdogPings), fmt.Sprintf("%+d", i.Wakeups-i.WatchdogPings), "0 beyond the watchdog's", metWord(i.Wakeups <= i.WatchdogPings)})
	}
	return rows
}

func renderTable(rows []row, details, extra []string, machine string) string {
	var b strings.Builder
	fmt.Fprintln(&b, "| figure | ours | peer or floor | ratio | goal | met |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.ours, r.peer, r.ratio, r.goal, r.met)
	}
	fmt.Fprintln(&b, "\nCPU time (user + system) and page faults of the goal 1 pairs, medians over the same rounds:")
	fmt.Fprintln(&b, "\n| figure | CPU ours / peer | CPU ratio | page faults ours / peer |")
	fmt.Fprintln(&b, "|---|---|---|---|")
	for _, d := range details {
		fmt.Fprintln(&b, d)
	}
	if len(extra) > 0 {
		fmt.Fprintln(&b, "\nDecisions, measured in the same rounds (wall time, medians; ratio and difference paired by round):")
		fmt.Fprintln(&b, "\n| comparison | wall | ratio, difference | page faults |")
		fmt.Fprintln(&b, "|---|---|---|---|")
		for _, d := range extra {
			fmt.Fprintln(&b, d)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", machine)
	return b.String()
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineInfo(o options, load0, load1 string, took time.Duration) string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	version := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return fmt.Sprintf("Machine: %d CPUs (%s), Linux %s, shared with other work (load average %s at the start, %s at the end); %s. "+
		"Measured %s in %s: %s; %s; %s; %s.",
		runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), load0, load1, runtime.Version(),
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second),
		version(o.rcd, "version"), version(o.nvctk, "--version"), version(o.ctrd1, "--version"), version(o.ctrd2, "--version"))
}

const (
	beginMark = "<!-- bench:begin (make bench writes this block) -->"
	endMark   = "<!-- bench:end -->"
)

// rewriteBlock puts text between the markers of the file at path.
func rewriteBlock(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return errors.New(path + " has no bench block (" + beginMark + " ... " + endMark + ")")
	}
	s = s[:i+len(beginMark)] + "\n" + text + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
