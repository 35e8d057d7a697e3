// Command cliflag is runtimeclassd's command line shape (11 global flags,
// 8 commands with their flags) on the standard library's flag package, as
// cmd/runtimeclassd parses it: make bench times it against clikingpin, the
// same on kingpin/v2 and prometheus/common/version (node_exporter's stack),
// to show what that choice would cost every start.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	global := flag.NewFlagSet("runtimeclassd", flag.ContinueOnError)
	for _, n := range globalFlags {
		global.String(n, "default", "the "+n)
	}
	version := global.Bool("version", false, "print the version")
	if err := global.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	for _, c := range commands {
		fs := flag.NewFlagSet(c, flag.ContinueOnError)
		fs.Bool("dry-run", false, "print, change nothing")
		fs.Bool("diff", false, "print a diff")
		fs.String("output", "text", "text or json")
	}
	if *version || global.Arg(0) == "version" {
		fmt.Println("runtimeclassd 0.0.0")
	}
}

var (
	globalFlags = []string{"config", "log-level", "containerd-config", "policy-dir", "state-dir", "shim-path", "host-root",
		"containerd-bin", "containerd-address", "containerd-unit", "nfd-feature-file"}
	commands = []string{"run", "apply", "revert", "check", "validate", "runtimeclass", "status", "version"}
)
