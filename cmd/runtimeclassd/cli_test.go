package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpAndVersion: --help, -h, help, help COMMAND and COMMAND --help
// print to stdout and exit 0; --version and -v anywhere print the
// version; help spells flags --flag and aligns its columns.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errs := runMain(args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: runtimeclassd [global flags] COMMAND [flags]") {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
		}
		for i := range commands {
			if !strings.Contains(out, "\n  "+commands[i].name+" ") {
				t.Errorf("%v: command %s not listed", args, commands[i].name)
			}
		}
		for _, f := range []string{"--config FILE", "--containerd-config FILE", "--log-level LEVEL", "-v, --version", "-h, --help"} {
			if !strings.Contains(out, "  "+f+" ") {
				t.Errorf("%v: %q not shown", args, f)
			}
		}
		checkFlagSpelling(t, out)
		checkAligned(t, out)
	}
	for _, c := range append(commands, command{name: "help"}) {
		if c.name == "help" {
			continue
		}
		for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}} {
			code, out, errs := runMain(args...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: runtimeclassd "+c.name) {
				t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
			}
			commandFlags(&c).VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "  --"+f.Name) {
					t.Errorf("%v: flag --%s not shown", args, f.Name)
				}
			})
			checkFlagSpelling(t, out)
			checkAligned(t, out)
		}
	}
	// A subcommand's --help too (it used to print "flag: help requested"
	// and exit 2).
	for _, args := range [][]string{{"fleet", "status", "--help"}, {"fleet", "clear", "-h"}} {
		if code, out, errs := runMain(args...); code != 0 || errs != "" || !strings.HasPrefix(out, "usage: runtimeclassd fleet") {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
		}
	}
	want := regexp.MustCompile(`^runtimeclassd \S+ \(revision \S+, branch \S+, go\S+ linux/\w+\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}, {"apply", "--version"}, {"--config", "/nonexistent", "status", "-v"}} {
		code, out, errs := runMain(args...)
		if code != 0 || errs != "" || !want.MatchString(out) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", args, code, errs, out)
		}
	}
}

// checkFlagSpelling fails if help shows a flag with one dash.
func checkFlagSpelling(t *testing.T, out string) {
	t.Helper()
	if m := regexp.MustCompile(`(?m)(^|\s|\[)-[a-z][a-z-]+`).FindString(out); m != "" {
		t.Errorf("help spells a flag with one dash (%q):\n%s", m, out)
	}
}

// checkAligned fails unless each block of two-column rows starts its
// second column at one position.
func checkAligned(t *testing.T, out string) {
	t.Helper()
	for _, block := range strings.Split(out, "\n\n") {
		col := -1
		for _, l := range strings.Split(block, "\n") {
			if !strings.HasPrefix(l, "  ") {
				continue
			}
			i := strings.Index(l[2:], "  ")
			if i < 0 {
				t.Errorf("row without a second column: %q", l)
				continue
			}
			start := 2 + i + len(l[2+i:]) - len(strings.TrimLeft(l[2+i:], " "))
			if col >= 0 && start != col {
				t.Errorf("second column at %d, not %d: %q\n%s", start, col, l, block)
			}
			col = start
		}
	}
}

// TestUsageErrorsSpellFlags: a usage error exits 2, says what is wrong
// with the flag spelled as help spells it, and points at the help.
func TestUsageErrorsSpellFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus", "status"}, "flag provided but not defined: --bogus"},
		{[]string{"apply", "--bogus"}, "runtimeclassd apply: flag provided but not defined: --bogus"},
		{[]string{"check", "--output", "xml"}, `invalid value "xml" for flag --output: must be text or json`},
		{[]string{"apply", "--no-validate"}, "--no-validate needs --dry-run"},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status", "--config"}, "flag needs an argument: --config"},
		{[]string{"fleet"}, "fleet status | fleet clear (--all | HASH...)"},
		{[]string{"fleet", "restart"}, `unknown fleet command "restart"`},
		{[]string{"fleet", "clear"}, "fleet clear takes --all or policy hashes, not both or neither"},
		{[]string{"fleet", "clear", "--all", "abc"}, "not both or neither"},
		{[]string{"fleet", "status", "x"}, `unexpected argument "x"`},
	} {
		code, out, errs := runMain(tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestFleetNeedsAKubeconfig: without fleet_kubeconfig or --kubeconfig,
// fleet says where to give one; an unreadable one is named.
func TestFleetNeedsAKubeconfig(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	code, _, errs := runMain("--config", cfg, "fleet", "status")
	if code != 1 || !strings.Contains(errs, "no kubeconfig: set fleet_kubeconfig in the daemon config or give --kubeconfig") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	missing := filepath.Join(t.TempDir(), "fleet.kubeconfig")
	code, _, errs = runMain("--config", cfg, "fleet", "clear", "--all", "--kubeconfig", missing)
	if code != 1 || !strings.Contains(errs, missing) {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestDocs: the hidden __docs command writes a man page per command, each
// naming every flag the command parses, that man renders without a
// warning; and completions for bash, zsh and fish.
func TestDocs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, errs := runMain(docsCommand, dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	pages := map[string]*command{"runtimeclassd": nil}
	for i := range commands {
		pages["runtimeclassd-"+commands[i].name] = &commands[i]
	}
	_, manErr := exec.LookPath("man")
	for name, c := range pages {
		path := filepath.Join(dir, "man", name+".8.gz")
		page := gunzip(t, path)
		if !strings.HasPrefix(page, ".TH "+strings.ToUpper(strings.ReplaceAll(name, "-", `\-`))+" 8 ") ||
			!strings.Contains(page, ".SH NAME\n"+strings.ReplaceAll(name, "-", `\-`)+` \- `) {
			t.Errorf("%s: header or NAME:\n%s", name, page)
		}
		fs := globalFlagSet()
		if c != nil {
			fs = commandFlags(c)
			globalFlagSet().VisitAll(func(f *flag.Flag) {
				if !strings.Contains(page, `\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)) {
					t.Errorf("%s: global flag --%s missing", name, f.Name)
				}
			})
		}
		if c != nil && len(flagRows(fs, nil)) > 0 && !strings.Contains(page, "\n.SH OPTIONS\n") {
			t.Errorf("%s: no OPTIONS section", name)
		}
		fs.VisitAll(func(f *flag.Flag) {
			if _, short := aliases[f.Name]; short {
				return
			}
			if !strings.Contains(page, `\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)) {
				t.Errorf("%s: flag --%s missing", name, f.Name)
			}
		})
		if manErr != nil {
			continue
		}
		cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man %s: %v\n%s", name, err, &stderr)
		}
	}
	for _, f := range []string{"runtimeclassd.bash", "_runtimeclassd", "runtimeclassd.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, "completions", f)); err != nil || fi.Size() == 0 {
			t.Errorf("completion %s: %v", f, err)
		}
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBashCompletion runs the generated bash completion the way bash's
// programmable completion does.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "runtimeclassd.bash")
	if err := os.WriteFile(script, bashCompletion(), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := t.TempDir()
	os.Mkdir(filepath.Join(dirs, "policy.d"), 0o755)
	os.WriteFile(filepath.Join(dirs, "policy.toml"), nil, 0o644)
	for _, tc := range []struct {
		words string // the last word is the one being completed
		want  []string
	}{
		{"runtimeclassd ap", []string{"apply"}},
		{"runtimeclassd ", []string{"run", "apply", "revert", "check", "validate", "runtimeclass", "status", "fleet", "version", "help"}},
		{"runtimeclassd apply --d", []string{"--diff", "--dry-run", "--drop-in"}},
		{"runtimeclassd --config x.toml --log-level info ap", []string{"apply"}},
		{"runtimeclassd check --output ", []string{"text", "json"}},
		{"runtimeclassd --log-level d", []string{"debug"}},
		{"runtimeclassd run --web.c", []string{"--web.config.file"}},
		{"runtimeclassd --policy-dir " + dirs + "/p", []string{dirs + "/policy.d"}},
		{"runtimeclassd validate " + dirs + "/policy.t", []string{dirs + "/policy.toml"}},
		{"runtimeclassd help v", []string{"validate", "version"}},
		{"runtimeclassd --v", []string{"--version"}},
	} {
		words := strings.Split(tc.words, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := ". " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) +
			"\n_runtimeclassd\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Errorf("%q: %v\n%s", tc.words, err, out)
			continue
		}
		got := strings.Fields(string(out))
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q: completed %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestZshAndFishCompletions: the zsh and fish scripts parse, and fish,
// which can be asked from a script, completes like bash does. Missing
// shells skip, unless RUNTIMECLASSD_REQUIRE_REAL is set (make test).
func TestZshAndFishCompletions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	need := func(shell string) string {
		p, err := exec.LookPath(shell)
		if err != nil {
			if os.Getenv("RUNTIMECLASSD_REQUIRE_REAL") != "" {
				t.Fatalf("%s is not installed (scripts/deps.sh installs it)", shell)
			}
			t.Logf("%s is not installed; not checked", shell)
		}
		return p
	}
	if zsh := need("zsh"); zsh != "" {
		p := filepath.Join(dir, "_runtimeclassd")
		os.WriteFile(p, zshCompletion(), 0o644)
		if out, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
	if fish := need("fish"); fish != "" {
		p := filepath.Join(dir, "runtimeclassd.fish")
		os.WriteFile(p, fishCompletion(), 0o644)
		if out, err := exec.Command(fish, "--no-execute", p).CombinedOutput(); err != nil {
			t.Errorf("fish --no-execute: %v\n%s", err, out)
		}
		for _, tc := range []struct{ line, want string }{
			{"runtimeclassd ap", "apply"},
			{"runtimeclassd --config x.toml ap", "apply"},
			{"runtimeclassd apply --dry", "--dry-run"},
			{"runtimeclassd check --output ", "text json"},
			{"runtimeclassd --log-level ", "debug info warn error"},
			{"runtimeclassd help val", "validate"},
		} {
			cmd := exec.Command(fish, "--no-config", "-c", "source "+p+"; complete -C '"+tc.line+"'")
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
			out, err := cmd.CombinedOutput()
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
			want := strings.Fields(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("fish %q: %v, completed %q, want %q", tc.line, err, got, tc.want)
			}
		}
	}
}
