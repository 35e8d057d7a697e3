package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// The command line is the standard library's flag package with this file
// on top: `--flag` spelling in every text, aligned help, `-h`/`--help`,
// `-v`/`--version`, `help COMMAND`, and, from the same flag definitions, a
// man page per command and bash, zsh and fish completions (docs.go). It
// costs no dependency and nothing at start-up; see docs/BENCHMARKS.md for
// why not kingpin.

// aliases are the one-letter spellings of flags; help shows them together.
var aliases = map[string]string{"v": "version", "h": "help"}

// valuesFlag is a flag whose values can be listed (for help and
// completions).
type valuesFlag interface {
	flag.Value
	Values() []string
}

// enumValue is a string flag that takes one of a few values.
type enumValue struct {
	val     *string
	allowed []string
}

func newEnum(fs *flag.FlagSet, name, def, usage string, allowed ...string) *string {
	v := def
	fs.Var(&enumValue{val: &v, allowed: allowed}, name, usage)
	return &v
}

func (e *enumValue) String() string {
	if e == nil || e.val == nil {
		return ""
	}
	return *e.val
}

func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("must be %s", orList(e.allowed))
	}
	*e.val = s
	return nil
}

func (e *enumValue) Values() []string { return e.allowed }

// levelValue is --log-level: anything slog.Level reads ("info", "WARN",
// "debug+2"); help and completions offer the four names.
type levelValue struct{ level *slog.LevelVar }

func (l *levelValue) String() string {
	if l == nil || l.level == nil {
		return ""
	}
	return strings.ToLower(l.level.Level().String())
}

func (l *levelValue) Set(s string) error { return l.level.UnmarshalText([]byte(s)) }

func (l *levelValue) Values() []string { return []string{"debug", "info", "warn", "error"} }

func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

// isBool reports whether f is a flag without a value (--dry-run).
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// placeholder is what a flag's value is called in help: the back-quoted
// word of its usage (`FILE`), or its values.
func placeholder(f *flag.Flag) (name, usage string) {
	name, usage = flag.UnquoteUsage(f)
	if isBool(f) {
		return "", usage
	}
	if v, ok := f.Value.(valuesFlag); ok && (name == "" || name == "value") {
		name = strings.Join(v.Values(), "|")
	}
	if name == "string" || name == "value" || name == "" {
		name = "VALUE"
	}
	return name, usage
}

// flagRows renders fs's flags as aligned help rows: "--name VALUE" and
// the usage, with the default when there is one. Hidden flags (the short
// aliases, shown with their long name) are left out.
func flagRows(fs *flag.FlagSet, skip func(name string) bool) [][2]string {
	short := map[string]string{}
	for s, l := range aliases {
		if fs.Lookup(s) != nil {
			short[l] = s
		}
	}
	var rows [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		if _, isAlias := aliases[f.Name]; isAlias || (skip != nil && skip(f.Name)) {
			return
		}
		ph, usage := placeholder(f)
		left := "--" + f.Name
		if s, ok := short[f.Name]; ok {
			left = "-" + s + ", " + left
		}
		if ph != "" {
			left += " " + ph
		}
		if d := f.DefValue; d != "" && !isBool(f) {
			usage += " (default " + d + ")"
		}
		rows = append(rows, [2]string{left, usage})
	})
	return rows
}

// writeRows prints two columns, the second aligned.
func writeRows(w io.Writer, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

// synopsis is a command's flags as the usage line shows them:
// [--dry-run] [--output text|json].
func synopsis(c *command) string {
	fs := commandFlags(c)
	var parts []string
	fs.VisitAll(func(f *flag.Flag) {
		ph, _ := placeholder(f)
		if ph != "" {
			ph = " " + ph
		}
		parts = append(parts, "[--"+f.Name+ph+"]")
	})
	if c.args != "" {
		parts = append(parts, c.args)
	}
	return strings.Join(parts, " ")
}

// commandFlags is a command's flag set with only its own flags.
func commandFlags(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(fs)
	return fs
}

// globalFlagSet holds the global flags, as help shows them.
func globalFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("runtimeclassd", flag.ContinueOnError)
	new(globalFlags).register(fs)
	return fs
}

// usage is the help of the whole command line.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: runtimeclassd [global flags] COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, summary)
	fmt.Fprintln(w, "\ncommands:")
	var rows [][2]string
	for i := range commands {
		rows = append(rows, [2]string{commands[i].name, commands[i].help})
	}
	rows = append(rows, [2]string{"help", "show the help of a command: runtimeclassd help COMMAND"})
	writeRows(w, rows)
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	writeRows(w, append(flagRows(globalFlagSet(), nil), [2]string{"-h, --help", "show this help, or a command's"}))
	fmt.Fprintln(w, "\nExit status: 0 success, 1 failure, 2 usage. See runtimeclassd(8) and runtimeclassd-COMMAND(8).")
}

// commandUsage is the help of one command.
func commandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: runtimeclassd %s %s\n\n%s\n", c.name, synopsis(c), c.help)
	own := flagRows(commandFlags(c), nil)
	if len(own) > 0 {
		fmt.Fprintln(w, "\nflags:")
		writeRows(w, own)
	}
	fmt.Fprintln(w, "\nglobal flags: see runtimeclassd --help")
}

// dashed spells the flag package's "-name" as "--name" in its errors, the
// way help and the README spell flags.
func dashed(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if msg[i] == '-' && (i == 0 || msg[i-1] == ' ' || msg[i-1] == ':') && i+1 < len(msg) && msg[i+1] >= 'a' && msg[i+1] <= 'z' {
			b.WriteByte('-')
		}
		b.WriteByte(msg[i])
	}
	return b.String()
}

func usageError(w io.Writer, c *command, err error) {
	msg := dashed(err.Error())
	if c == nil {
		fmt.Fprintf(w, "runtimeclassd: %s\nRun 'runtimeclassd --help' for usage.\n", msg)
		return
	}
	fmt.Fprintf(w, "runtimeclassd %s: %s\nusage: runtimeclassd %s %s\nRun 'runtimeclassd help %s' for more.\n", c.name, msg, c.name, synopsis(c), c.name)
}

// helpCommand is `runtimeclassd help [COMMAND]`.
func helpCommand(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stdout)
		return exitOK
	case len(args) > 1:
		usageError(stderr, nil, errors.New("help takes one command"))
		return exitUsage
	}
	c := lookup(args[0])
	if c == nil {
		usageError(stderr, nil, fmt.Errorf("unknown command %q", args[0]))
		return exitUsage
	}
	commandUsage(stdout, c)
	return exitOK
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}
