package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Man pages and shell completions, generated from the flag definitions
// that the command line parses with: `runtimeclassd __docs DIR` writes
// DIR/man/runtimeclassd.8.gz and DIR/man/runtimeclassd-COMMAND.8.gz, and
// DIR/completions/runtimeclassd.bash, _runtimeclassd (zsh) and
// runtimeclassd.fish. `make build` runs it; the packages ship them.

// docsCommand is hidden: help and completions don't offer it.
const docsCommand = "__docs"

// The man pages' descriptions of each command.
const (
	longRun = `Runs the daemon. It reconciles at start, on any change in the policy directory (editors that save by rename, Kubernetes ConfigMap swaps, deletes; a directory that does not exist yet is waited for), on changes to containerd's config.toml (drift), on SIGHUP, on an inotify overflow and every resync_interval (5 minutes). Changes are debounced (debounce, 500 ms). Its own writes do not trigger it.

When config.toml changed, it restarts containerd.service over systemd's D-Bus API, at most once per restart_min_interval and after a random restart_splay, then verifies through containerd's socket that containerd serves, that no CRI plugin failed to load and that every offered handler is served. If not, it restores the backup, restarts containerd and verifies again, and remembers the candidate as bad until the policy, config.toml or the host checks change.

With a kubeconfig for its Node (node_kubeconfig; the kubelet's, /etc/kubernetes/kubelet.conf, when it exists) it sets runtimeclassd.io/handler.NAME=true|false on its own Node object, true only for a handler that containerd serves and that passed its smoke test, as in the NFD feature file; an API server that can't be reached delays the labels, never the node. With fleet_kubeconfig it takes one of max_concurrent_restarts restart slots (Leases) before it writes a config that restarts containerd, holds it until the handlers are verified and smoke-tested, records a policy it rolled back, and holds a policy that failed on another node (see runtimeclassd-fleet(8)).

It notifies systemd (Type=notify): READY=1 after the first reconcile, STATUS= after each, WATCHDOG=1 when WatchdogSec= is set. Logs go to stderr; under systemd each line carries its priority, so journalctl -p err shows the errors.

It serves /metrics (Prometheus), /healthz, /readyz and a landing page at / on --web.listen-address, loopback by default.`

	longApply = `Merges the policy's handlers into containerd's config.toml: one managed block per handler, between "# runtimeclassd:begin" and "# runtimeclassd:end" comments; no other byte of the file changes. A handler that the host cannot run (see runtimeclassd-check(8)) is withheld, and a handler that config.toml already defines outside a managed block is left alone and reported.

The candidate is checked with the installed containerd (containerd --config CANDIDATE config dump) before anything is written: containerd must accept it, every handler must be where the CRI plugin reads it, and the default runtime must survive. The previous file is kept in the state directory; the write is atomic and keeps the file's mode and owner. Unless --no-restart is given, containerd is then restarted over D-Bus and verified, and the backup is restored if it does not come back healthy.

--dry-run prints the whole would-be config.toml to standard output and changes nothing; --diff prints a unified diff instead (both together print only the diff). What happened goes to standard error.`

	longRevert = `Removes every block that runtimeclassd manages from containerd's config.toml. On a file that nobody else changed, the result is the original file byte for byte. Unless --no-restart is given, containerd is restarted and verified, as by apply. A running daemon does not apply the policy again until the policy changes or runtimeclassd apply runs.`

	longCheck = `Shows, for each handler of the policy, every host check and its result: the shim that runtime_type names (found on --shim-path, a regular, executable, root-owned file, in directories that only root can write), the files the handler names, and what its requires list and preset ask for (kvm, vhost-vsock, kata-config, runsc, nvidia, path:FILE). Every lookup goes through --host-root. The exit status is 0 only if every handler is ready.`

	longValidate = `Checks policy files the way the daemon reads them: strict decoding (unknown keys are errors, with file, line and column), handler names, runtime types, path rules, annotation lists, file ownership and mode. Prints the handlers of each file.`

	longRuntimeclass = `Prints a Kubernetes RuntimeClass for each handler of the policy, whose scheduling.nodeSelector asks for the runtimeclassd.io/handler.NAME=true node label that runtimeclassd sets on its Node (or Node Feature Discovery sets from runtimeclassd's feature file), so that pods of that class run only on nodes where the handler is ready. Kata handlers get Kata's pod overhead.`

	longStatus = `Shows the last outcome recorded in the state directory (what ran, when and why it failed), the last backup, the handlers that config.toml holds in managed blocks, and for each policy handler whether it is offered and why not.`
)

// writeDocs is the hidden `__docs DIR` command.
func writeDocs(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: runtimeclassd %s DIR\n", docsCommand)
		return exitUsage
	}
	dir := args[0]
	files := map[string][]byte{}
	files[filepath.Join("man", "runtimeclassd.8.gz")] = gz(manPage(nil))
	for i := range commands {
		files[filepath.Join("man", "runtimeclassd-"+commands[i].name+".8.gz")] = gz(manPage(&commands[i]))
	}
	files[filepath.Join("completions", "runtimeclassd.bash")] = bashCompletion()
	files[filepath.Join("completions", "_runtimeclassd")] = zshCompletion()
	files[filepath.Join("completions", "runtimeclassd.fish")] = fishCompletion()
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintf(stderr, "runtimeclassd: %v\n", err)
			return exitFailure
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fmt.Fprintf(stderr, "runtimeclassd: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

// gz compresses a man page the way Debian wants it: at the best level, with
// no name or time in the header (so the same page gives the same bytes).
func gz(b []byte) []byte {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// roff escapes text for a man page: backslashes, hyphens (as minus signs,
// so that options can be searched and copied), and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// manFlags writes an OPTIONS-style list of fs's flags.
func manFlags(w io.Writer, fs *flag.FlagSet) {
	for _, r := range flagRows(fs, nil) {
		name, value, _ := strings.Cut(r[0], " ")
		if strings.HasSuffix(name, ",") { // -v, --version
			name, value = r[0], ""
		}
		if value == "" {
			fmt.Fprintf(w, ".TP\n.B %s\n", roff(name))
		} else {
			fmt.Fprintf(w, ".TP\n.BI \"%s \" %s\n", roff(name), roff(value))
		}
		// Long defaults (--shim-path's) may break after a colon or slash.
		fmt.Fprintln(w, strings.NewReplacer(":", `:\:`, "/", `/\:`).Replace(roff(r[1])))
	}
}

// manPage is runtimeclassd(8), or runtimeclassd-COMMAND(8) for c.
func manPage(c *command) []byte {
	var b bytes.Buffer
	name, what := "runtimeclassd", "keep containerd's CRI runtime handlers in line with a policy"
	if c != nil {
		name, what = "runtimeclassd-"+c.name, c.help
	}
	fmt.Fprintf(&b, ".TH %s 8 \"\" \"runtimeclassd %s\" \"System Administration\"\n", roff(strings.ToUpper(name)), roff(version))
	// Ragged right, no hyphenation: paths and flag names stay whole.
	fmt.Fprintln(&b, ".nh\n.ad l")
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n.SH SYNOPSIS\n", roff(name), roff(what))
	if c == nil {
		fmt.Fprintf(&b, ".B runtimeclassd\n[\\fIglobal flags\\fR] \\fICOMMAND\\fR [\\fIflags\\fR]\n")
		fmt.Fprintf(&b, ".br\n.B runtimeclassd\n\\-\\-help | \\-\\-version | help [\\fICOMMAND\\fR]\n")
		fmt.Fprintf(&b, ".SH DESCRIPTION\n%s\n.PP\n%s\n", roff(summary), roff(`It reads the policy files (*.toml) of /etc/runtimeclassd/policy.d, checks which handlers the host can run, writes one managed block per ready handler into containerd's config.toml without touching any other byte, has the installed containerd validate the result, and restarts containerd over D-Bus, verifying it and rolling back if it does not come back healthy. Node Feature Discovery's feature file says which handlers the node offers.`))
		fmt.Fprintln(&b, ".SH COMMANDS")
		for i := range commands {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s; see \\fBruntimeclassd\\-%s\\fR(8).\n", roff(commands[i].name), roff(commands[i].help), roff(commands[i].name))
		}
		fmt.Fprintf(&b, ".TP\n.B help\nshow the help of a command.\n")
		fmt.Fprintln(&b, ".SH GLOBAL OPTIONS")
		fmt.Fprintln(&b, roff("They may come before or after the command. Each path flag also has a key in the daemon config file (--config): containerd_config, policy_dir, state_dir, shim_path, host_root, containerd_bin, containerd_address, containerd_unit, nfd_feature_file; a flag that is given wins."))
		manFlags(&b, globalFlagSet())
	} else {
		fmt.Fprintf(&b, ".B runtimeclassd\n[\\fIglobal flags\\fR] \\fB%s\\fR %s\n", roff(c.name), roff(synopsis(c)))
		fmt.Fprintln(&b, ".SH DESCRIPTION")
		for i, p := range strings.Split(c.long, "\n\n") {
			if i > 0 {
				fmt.Fprintln(&b, ".PP")
			}
			fmt.Fprintln(&b, roff(p))
		}
		if fs := commandFlags(c); len(flagRows(fs, nil)) > 0 {
			fmt.Fprintln(&b, ".SH OPTIONS")
			manFlags(&b, fs)
		}
		fmt.Fprintln(&b, ".SH GLOBAL OPTIONS")
		fmt.Fprintln(&b, roff("Before or after the command; see runtimeclassd(8)."))
		manFlags(&b, globalFlagSet())
	}
	fmt.Fprintln(&b, ".SH EXIT STATUS")
	fmt.Fprintln(&b, roff("0 on success, 1 on failure, 2 on a usage error."))
	if c != nil && c.name == "check" {
		fmt.Fprintln(&b, roff("check exits 1 when a handler is not ready."))
	}
	fmt.Fprintln(&b, ".SH FILES")
	for _, f := range [][2]string{
		{"/etc/runtimeclassd/config.toml", "the daemon config: every setting and its default"},
		{"/etc/runtimeclassd/policy.d/*.toml", "the policy, read in lexical order; root-owned, not group- or world-writable"},
		{"/etc/containerd/config.toml", "containerd's config, where the handlers go"},
		{"/var/lib/runtimeclassd/", "the state file, the lock and the backups of config.toml"},
		{"/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd", "the handlers the node offers, for Node Feature Discovery"},
	} {
		fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", roff(f[0]), roff(f[1]))
	}
	fmt.Fprintln(&b, ".SH SEE ALSO")
	var see []string
	if c != nil {
		see = append(see, `\fBruntimeclassd\fR(8)`)
	}
	for i := range commands {
		if c == nil || commands[i].name != c.name {
			see = append(see, `\fBruntimeclassd\-`+roff(commands[i].name)+`\fR(8)`)
		}
	}
	see = append(see, `\fBcontainerd\fR(8)`, `\fBsystemctl\fR(1)`)
	fmt.Fprintln(&b, strings.Join(see, ",\n"))
	fmt.Fprintf(&b, ".PP\n%s\n", roff("/usr/share/doc/runtimeclassd/README.md"))
	return b.Bytes()
}

// A completion's view of a flag.
type compFlag struct {
	name, short, help string
	kind              string // "" (no value), "file", "dir", "values", "text"
	values            []string
}

func compFlags(fs *flag.FlagSet) []compFlag {
	short := map[string]string{}
	for s, l := range aliases {
		if fs.Lookup(s) != nil {
			short[l] = s
		}
	}
	var out []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		if _, isAlias := aliases[f.Name]; isAlias {
			return
		}
		ph, usage := placeholder(f)
		cf := compFlag{name: f.Name, short: short[f.Name], help: usage}
		switch {
		case isBool(f):
		case ph == "FILE" || ph == "SOCK":
			cf.kind = "file"
		case ph == "DIR" || ph == "DIRS":
			cf.kind = "dir"
		default:
			if v, ok := f.Value.(valuesFlag); ok {
				cf.kind, cf.values = "values", v.Values()
			} else {
				cf.kind = "text"
			}
		}
		out = append(out, cf)
	})
	return out
}

// completionModel is everything the three scripts need.
type completionModel struct {
	globals  []compFlag
	commands []string
	helps    map[string]string
	flags    map[string][]compFlag
	files    map[string]bool // commands whose arguments are files
}

func newCompletionModel() completionModel {
	globals := compFlags(globalFlagSet())
	globals = append(globals, compFlag{name: "help", short: "h", help: "show the help"})
	m := completionModel{globals: globals, helps: map[string]string{}, flags: map[string][]compFlag{}, files: map[string]bool{}}
	for i := range commands {
		c := &commands[i]
		m.commands = append(m.commands, c.name)
		m.helps[c.name] = c.help
		m.flags[c.name] = compFlags(commandFlags(c))
		m.files[c.name] = strings.Contains(c.args, "FILE")
	}
	m.commands = append(m.commands, "help")
	m.helps["help"] = "show the help of a command"
	return m
}

// valued lists every flag that takes a value, by kind, across commands.
func (m completionModel) valued() map[string]compFlag {
	out := map[string]compFlag{}
	add := func(fs []compFlag) {
		for _, f := range fs {
			if f.kind != "" {
				out[f.name] = f
			}
		}
	}
	add(m.globals)
	for _, c := range m.commands {
		add(m.flags[c])
	}
	return out
}

func flagWords(fs []compFlag) string {
	var w []string
	for _, f := range fs {
		w = append(w, "--"+f.name)
		if f.short != "" {
			w = append(w, "-"+f.short)
		}
	}
	return strings.Join(w, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

const generated = "generated by `runtimeclassd __docs` from its flag definitions; do not edit"

func bashCompletion() []byte {
	m := newCompletionModel()
	valued := m.valued()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# bash completion for runtimeclassd: %s.\n", generated)
	fmt.Fprintf(&b, "_runtimeclassd() {\n")
	fmt.Fprintf(&b, "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= name i\n")
	fmt.Fprintf(&b, "    local valued=' %s '\n", strings.Join(sortedKeys(valued), " "))
	fmt.Fprintf(&b, "    for ((i = 1; i < COMP_CWORD; i++)); do\n")
	fmt.Fprintf(&b, "        case ${COMP_WORDS[i]} in\n")
	fmt.Fprintf(&b, "        -*=*) ;;\n")
	fmt.Fprintf(&b, "        -*) name=${COMP_WORDS[i]#-}; name=${name#-}\n")
	fmt.Fprintf(&b, "            [[ $valued == *\" $name \"* && ${COMP_WORDS[i+1]} != = ]] && ((i++)) ;;\n")
	fmt.Fprintf(&b, "        =) ((i++)) ;;\n")
	fmt.Fprintf(&b, "        *) cmd=${COMP_WORDS[i]}; break ;;\n")
	fmt.Fprintf(&b, "        esac\n")
	fmt.Fprintf(&b, "    done\n")
	fmt.Fprintf(&b, "    # A flag's value: --flag VALUE, or --flag=VALUE (bash splits at the =).\n")
	fmt.Fprintf(&b, "    [[ $prev == = ]] && prev=${COMP_WORDS[COMP_CWORD-2]}\n")
	fmt.Fprintf(&b, "    [[ $cur == = ]] && { prev=${COMP_WORDS[COMP_CWORD-1]}; cur=; }\n")
	fmt.Fprintf(&b, "    if [[ $prev == -* ]]; then\n")
	fmt.Fprintf(&b, "        name=${prev#-}; name=${name#-}\n")
	fmt.Fprintf(&b, "        case $name in\n")
	byKind := map[string][]string{}
	for _, n := range sortedKeys(valued) {
		f := valued[n]
		switch f.kind {
		case "values":
			fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return ;;\n", n, strings.Join(f.values, " "))
		default:
			byKind[f.kind] = append(byKind[f.kind], n)
		}
	}
	if n := byKind["file"]; len(n) > 0 {
		fmt.Fprintf(&b, "        %s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(n, "|"))
	}
	if n := byKind["dir"]; len(n) > 0 {
		fmt.Fprintf(&b, "        %s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n", strings.Join(n, "|"))
	}
	if n := byKind["text"]; len(n) > 0 {
		fmt.Fprintf(&b, "        %s) return ;;\n", strings.Join(n, "|"))
	}
	fmt.Fprintf(&b, "        esac\n")
	fmt.Fprintf(&b, "    fi\n")
	fmt.Fprintf(&b, "    local globals='%s'\n", flagWords(m.globals))
	fmt.Fprintf(&b, "    if [[ -z $cmd ]]; then\n")
	fmt.Fprintf(&b, "        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$globals\" -- \"$cur\"))\n")
	fmt.Fprintf(&b, "        else COMPREPLY=($(compgen -W '%s' -- \"$cur\")); fi\n", strings.Join(m.commands, " "))
	fmt.Fprintf(&b, "        return\n")
	fmt.Fprintf(&b, "    fi\n")
	fmt.Fprintf(&b, "    if [[ $cur == -* ]]; then\n")
	fmt.Fprintf(&b, "        case $cmd in\n")
	for _, c := range m.commands {
		if w := flagWords(m.flags[c]); w != "" {
			fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W \"%s $globals\" -- \"$cur\")) ;;\n", c, w)
		}
	}
	fmt.Fprintf(&b, "        *) COMPREPLY=($(compgen -W \"$globals\" -- \"$cur\")) ;;\n")
	fmt.Fprintf(&b, "        esac\n")
	fmt.Fprintf(&b, "        return\n")
	fmt.Fprintf(&b, "    fi\n")
	fmt.Fprintf(&b, "    case $cmd in\n")
	var fileCmds []string
	for _, c := range m.commands {
		if m.files[c] {
			fileCmds = append(fileCmds, c)
		}
	}
	if len(fileCmds) > 0 {
		fmt.Fprintf(&b, "    %s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", strings.Join(fileCmds, "|"))
	}
	fmt.Fprintf(&b, "    help) COMPREPLY=($(compgen -W '%s' -- \"$cur\")) ;;\n", strings.Join(m.commands[:len(m.commands)-1], " "))
	fmt.Fprintf(&b, "    esac\n")
	fmt.Fprintf(&b, "}\n")
	fmt.Fprintf(&b, "complete -F _runtimeclassd runtimeclassd\n")
	return b.Bytes()
}

// zshQuote makes s one single-quoted zsh word.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshDesc escapes an _arguments description (inside [...]).
func zshDesc(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`).Replace(s)
}

func zshSpecs(fs []compFlag) []string {
	var out []string
	for _, f := range fs {
		action := ""
		switch f.kind {
		case "file":
			action = ":" + f.name + ":_files"
		case "dir":
			action = ":" + f.name + ":_files -/"
		case "values":
			action = ":" + f.name + ":(" + strings.Join(f.values, " ") + ")"
		case "text":
			action = ":" + f.name + ": "
		}
		eq := ""
		if f.kind != "" {
			eq = "="
		}
		if f.short != "" {
			out = append(out, zshQuote("(-"+f.short+" --"+f.name+")")+"{-"+f.short+",--"+f.name+"}"+zshQuote(eq+"["+zshDesc(f.help)+"]"+action))
		} else {
			out = append(out, zshQuote("--"+f.name+eq+"["+zshDesc(f.help)+"]"+action))
		}
	}
	return out
}

func zshCompletion() []byte {
	m := newCompletionModel()
	var b bytes.Buffer
	fmt.Fprintf(&b, "#compdef runtimeclassd\n# zsh completion for runtimeclassd: %s.\n\n", generated)
	fmt.Fprintf(&b, "_runtimeclassd() {\n")
	fmt.Fprintf(&b, "  local curcontext=$curcontext state line ret=1\n")
	fmt.Fprintf(&b, "  local -a globals commands\n")
	fmt.Fprintf(&b, "  globals=(\n")
	for _, s := range zshSpecs(m.globals) {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	fmt.Fprintf(&b, "  )\n")
	fmt.Fprintf(&b, "  commands=(\n")
	for _, c := range m.commands {
		fmt.Fprintf(&b, "    %s\n", zshQuote(c+":"+m.helps[c]))
	}
	fmt.Fprintf(&b, "  )\n")
	fmt.Fprintf(&b, "  _arguments -C $globals ': :->command' '*:: :->args' && ret=0\n")
	fmt.Fprintf(&b, "  case $state in\n")
	fmt.Fprintf(&b, "  command) _describe -t commands 'runtimeclassd command' commands && ret=0 ;;\n")
	fmt.Fprintf(&b, "  args)\n")
	fmt.Fprintf(&b, "    curcontext=${curcontext%%:*:*}:runtimeclassd-$words[1]:\n")
	fmt.Fprintf(&b, "    case $words[1] in\n")
	for _, c := range m.commands {
		if c == "help" {
			fmt.Fprintf(&b, "    help) _describe -t commands 'runtimeclassd command' commands && ret=0 ;;\n")
			continue
		}
		specs := append([]string{"$globals"}, zshSpecs(m.flags[c])...)
		if m.files[c] {
			specs = append(specs, zshQuote("*:file:_files"))
		}
		fmt.Fprintf(&b, "    %s) _arguments %s && ret=0 ;;\n", c, strings.Join(specs, " "))
	}
	fmt.Fprintf(&b, "    esac ;;\n")
	fmt.Fprintf(&b, "  esac\n")
	fmt.Fprintf(&b, "  return ret\n")
	fmt.Fprintf(&b, "}\n\n_runtimeclassd \"$@\"\n")
	return b.Bytes()
}

// fishQuote makes s one single-quoted fish word.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishFlag(b *bytes.Buffer, cond string, f compFlag) {
	fmt.Fprintf(b, "complete -c runtimeclassd")
	if cond != "" {
		fmt.Fprintf(b, " -n %s", fishQuote(cond))
	}
	if f.short != "" {
		fmt.Fprintf(b, " -s %s", f.short)
	}
	fmt.Fprintf(b, " -l %s", f.name)
	switch f.kind {
	case "file":
		fmt.Fprintf(b, " -r -F")
	case "dir":
		fmt.Fprintf(b, " -x -a '(__fish_complete_directories)'")
	case "values":
		fmt.Fprintf(b, " -x -a %s", fishQuote(strings.Join(f.values, " ")))
	case "text":
		fmt.Fprintf(b, " -x")
	}
	fmt.Fprintf(b, " -d %s\n", fishQuote(f.help))
}

func fishCompletion() []byte {
	m := newCompletionModel()
	valued := m.valued()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# fish completion for runtimeclassd: %s.\n\n", generated)
	// The command is the first word that is neither a flag nor a flag's
	// value.
	fmt.Fprintf(&b, "function __runtimeclassd_command\n")
	fmt.Fprintf(&b, "    set -l skip 0\n")
	fmt.Fprintf(&b, "    for t in (commandline -opc)[2..-1]\n")
	fmt.Fprintf(&b, "        if test $skip = 1\n            set skip 0\n            continue\n        end\n")
	fmt.Fprintf(&b, "        switch $t\n")
	fmt.Fprintf(&b, "            case '-*=*'\n")
	var pats []string
	for _, n := range sortedKeys(valued) {
		pats = append(pats, "--"+n, "-"+n)
	}
	fmt.Fprintf(&b, "            case %s\n                set skip 1\n", strings.Join(pats, " "))
	fmt.Fprintf(&b, "            case '-*'\n")
	fmt.Fprintf(&b, "            case '*'\n                echo $t\n                return 0\n")
	fmt.Fprintf(&b, "        end\n    end\n    return 1\nend\n\n")
	fmt.Fprintf(&b, "function __runtimeclassd_using\n    set -l c (__runtimeclassd_command)\n    and test \"$c\" = $argv[1]\nend\n\n")
	fmt.Fprintf(&b, "complete -c runtimeclassd -f\n")
	for _, c := range m.commands {
		fmt.Fprintf(&b, "complete -c runtimeclassd -n 'not __runtimeclassd_command' -a %s -d %s\n", c, fishQuote(m.helps[c]))
	}
	for _, f := range m.globals {
		fishFlag(&b, "", f)
	}
	for _, c := range m.commands {
		cond := "__runtimeclassd_using " + c
		for _, f := range m.flags[c] {
			fishFlag(&b, cond, f)
		}
		if m.files[c] {
			fmt.Fprintf(&b, "complete -c runtimeclassd -n %s -F\n", fishQuote(cond))
		}
	}
	fmt.Fprintf(&b, "complete -c runtimeclassd -n %s -a %s\n", fishQuote("__runtimeclassd_using help"), fishQuote(strings.Join(m.commands[:len(m.commands)-1], " ")))
	return b.Bytes()
}
