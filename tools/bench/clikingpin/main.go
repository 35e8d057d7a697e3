// Command clikingpin is cliflag on kingpin/v2 with prometheus/common/version,
// as node_exporter builds its command line.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
)

func main() {
	app := kingpin.New("runtimeclassd", "keeps containerd's runtime handlers in line")
	for _, n := range globalFlags {
		app.Flag(n, "the "+n).Default("default").String()
	}
	app.Version(version.Print("runtimeclassd"))
	for _, c := range commands {
		cmd := app.Command(c, "the "+c+" command")
		cmd.Flag("dry-run", "print, change nothing").Bool()
		cmd.Flag("diff", "print a diff").Bool()
		cmd.Flag("output", "text or json").Default("text").String()
	}
	if cmd, err := app.Parse(os.Args[1:]); err == nil && cmd == "version" {
		fmt.Println("runtimeclassd 0.0.0")
	}
}

var (
	globalFlags = []string{"config", "log-level", "containerd-config", "policy-dir", "state-dir", "shim-path", "host-root",
		"containerd-bin", "containerd-address", "containerd-unit", "nfd-feature-file"}
	commands = []string{"run", "apply", "revert", "check", "validate", "runtimeclass", "status", "version"}
)
