package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// The hostile-input suite (issue 7): policies and hosts built the way an
// attacker would, each run through the real command line in a throwaway
// node. Every case must be refused with a message naming the file (and its
// line and column where there is one), and must leave config.toml byte for
// byte as it was, with no backup, no pending apply and no label that offers
// the handler. TestHostileInputs prints how many cases ran and how many
// changed config.toml; docs/SECURITY.md states the same figures.

// stage is where a hostile case must be stopped.
type stage int

const (
	// atPolicy: policy.Load refuses it. apply, apply --dry-run and check
	// fail, naming the policy file.
	atPolicy stage = iota
	// atHost: the policy is valid, but a host check fails. check fails,
	// naming the file on the host; apply withholds the handler.
	atHost
	// atContainerd: containerd's view of the candidate is not what was
	// written. apply and apply --dry-run fail, naming the candidate.
	atContainerd
	// atWrite: the inputs are valid, but runtimeclassd would write (or make
	// containerd read) a file where someone other than root can redirect
	// or change it. apply --no-restart refuses that write, exiting with
	// code, and the message names the file or directory and why.
	atWrite
)

type hostileCase struct {
	name  string
	stage stage
	// files are policy files by name, written root-owned with mode 0644.
	files map[string]string
	// setup builds the rest: unsafe files and directories, host tricks.
	setup func(t *testing.T, n *node)
	// want must all appear in the refusal. {p} is the policy dir, {d} the
	// node's dir, {c} config.toml.
	want []string
	// args are extra flags for every command.
	args []string
	// major is the containerd the node runs: 1 (1.6, the default, on its
	// default config) or 2 (2.4.2, on its default config).
	major int
	// imports makes config.toml import the node's
	// etc/containerd/conf.d/*.toml (2.4.2's default config imports the
	// machine's /etc/containerd/conf.d/*.toml; 1.6's imports nothing).
	imports bool
	// code is apply --no-restart's exit code at stage atWrite.
	code int
	// after checks more once the commands ran (files left, labels).
	after func(t *testing.T, n *node)
}

const (
	runcHandler = "[handlers.x]\nruntime_type = \"io.containerd.runc.v2\"\n"
	kataHandler = "[handlers.x]\nruntime_type = \"io.containerd.kata.v2\"\n"
	runcOpts    = runcHandler + "[handlers.x.options]\n"
	kataOpts    = kataHandler + "[handlers.x.options]\n"
	// evilShim is a runtime type whose shim the host cases plant.
	evilHandler = "[handlers.x]\nruntime_type = \"io.containerd.evil.v2\"\n"
)

func one(body string) map[string]string { return map[string]string{"a.toml": body} }

// hostileCases are the suite. Each names what it tries.
func hostileCases() []hostileCase {
	var cs []hostileCase
	add := func(c ...hostileCase) { cs = append(cs, c...) }
	pol := func(name, body string, want ...string) hostileCase {
		return hostileCase{name: name, stage: atPolicy, files: one(body), want: want}
	}

	// Who may write the policy: files and their directory.
	add(
		hostileCase{name: "policy file group-writable", files: one(runcHandler), setup: chmodP("a.toml", 0o664), want: []string{"{p}/a.toml is group- or world-writable (mode 0664)"}},
		hostileCase{name: "policy file world-writable", files: one(runcHandler), setup: chmodP("a.toml", 0o646), want: []string{"{p}/a.toml is group- or world-writable (mode 0646)"}},
		hostileCase{name: "policy file owned by a user", files: one(runcHandler), setup: chownP("a.toml"), want: []string{"{p}/a.toml is owned by uid 1000, not root"}},
		hostileCase{name: "policy dir world-writable", files: one(runcHandler), setup: chmodP(".", 0o777), want: []string{"{p} is group- or world-writable (mode 0777)"}},
		hostileCase{name: "policy dir group-writable", files: one(runcHandler), setup: chmodP(".", 0o775), want: []string{"{p} is group- or world-writable (mode 0775)"}},
		hostileCase{name: "policy dir sticky and world-writable", files: one(runcHandler), setup: chmodP(".", os.ModeSticky|0o777), want: []string{"{p} is group- or world-writable (mode 1777)"}},
		hostileCase{name: "policy dir owned by a user", files: one(runcHandler), setup: chownP("."), want: []string{"{p} is owned by uid 1000, not root"}},
		hostileCase{name: "symlink to a world-writable file", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "evil.toml"), runcHandler, 0o666)
			symlink(t, "../evil.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml is group- or world-writable (mode 0666)"}},
		hostileCase{name: "symlink hop through a world-writable directory", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "safe/real.toml"), runcHandler, 0o644)
			mkdir(t, filepath.Join(n.dir, "ww"), 0o777)
			symlink(t, "../safe/real.toml", filepath.Join(n.dir, "ww/hop.toml"))
			symlink(t, "../ww/hop.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: directory {d}/ww is group- or world-writable (mode 0777)"}},
		hostileCase{name: "symlink chain of two hops, the second through a sticky world-writable directory", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "safe/real.toml"), runcHandler, 0o644)
			mkdir(t, filepath.Join(n.dir, "sticky"), os.ModeSticky|0o777)
			symlink(t, "../safe/real.toml", filepath.Join(n.dir, "sticky/hop2.toml"))
			symlink(t, "../sticky/hop2.toml", filepath.Join(n.dir, "safe/hop1.toml"))
			symlink(t, "../safe/hop1.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: directory {d}/sticky is group- or world-writable (mode 1777)"}},
		hostileCase{name: "symlink through a directory a user owns", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "eve/a.toml"), runcHandler, 0o644)
			chown(t, filepath.Join(n.dir, "eve"))
			symlink(t, "../eve/a.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: directory {d}/eve is owned by uid 1000, not root"}},
		hostileCase{name: "symlinked parent directory owned by a user", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "eve/a.toml"), runcHandler, 0o644)
			chown(t, filepath.Join(n.dir, "eve"))
			symlink(t, "../eve", filepath.Join(n.policy, "sub"))
			symlink(t, "sub/a.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: directory {d}/eve is owned by uid 1000, not root"}},
		hostileCase{name: "absolute symlink through /tmp", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.dir, "real.toml"), runcHandler, 0o644)
			symlink(t, filepath.Join(n.dir, "real.toml"), filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: directory /tmp is group- or world-writable (mode 1777)"}},
		hostileCase{name: "hardlink to a file a user owns", setup: func(t *testing.T, n *node) {
			write(t, filepath.Join(n.policy, ".eve"), runcHandler, 0o644)
			chown(t, filepath.Join(n.policy, ".eve"))
			if err := os.Link(filepath.Join(n.policy, ".eve"), filepath.Join(n.policy, "a.toml")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"{p}/a.toml is owned by uid 1000, not root"}},
		hostileCase{name: "dangling symlink", setup: func(t *testing.T, n *node) {
			symlink(t, "gone.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: does not exist"}},
		hostileCase{name: "symlink loop", setup: func(t *testing.T, n *node) {
			symlink(t, "a.toml", filepath.Join(n.policy, "a.toml"))
		}, want: []string{"{p}/a.toml: too many levels of symbolic links"}},
	)
	// What a policy file is: a regular file of at most 1 MiB, with a sane name.
	add(
		hostileCase{name: "FIFO named *.toml", setup: func(t *testing.T, n *node) {
			if err := syscall.Mkfifo(filepath.Join(n.policy, "a.toml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"{p}/a.toml: not a regular file"}},
		hostileCase{name: "socket named *.toml", setup: func(t *testing.T, n *node) {
			l, err := net.Listen("unix", filepath.Join(n.policy, "a.toml"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, want: []string{"{p}/a.toml"}},
		hostileCase{name: "device node named *.toml", setup: func(t *testing.T, n *node) {
			if err := syscall.Mknod(filepath.Join(n.policy, "a.toml"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"{p}/a.toml: not a regular file"}},
		hostileCase{name: "directory named *.toml", setup: func(t *testing.T, n *node) { mkdir(t, filepath.Join(n.policy, "a.toml"), 0o755) },
			want: []string{"{p}/a.toml: not a regular file"}},
		hostileCase{name: "file over the size limit", files: one(runcHandler + "#" + strings.Repeat("x", policy.MaxFileSize) + "\n"),
			want: []string{"{p}/a.toml: larger than 1048576 bytes"}},
		hostileCase{name: "file at the size limit holding one huge string", files: one(atLimit(runcOpts + "ShimCgroup = \"")),
			want: []string{"{p}/a.toml:4:1", "string of 1048"}},
		hostileCase{name: "file name with a newline", files: map[string]string{"a\n# runtimeclassd:end handler=x\n.toml": runcHandler},
			want: []string{`{p}/a\n# runtimeclassd:end handler=x\n.toml: a policy file name must not contain`}},
		hostileCase{name: "file name with a bidi override", files: map[string]string{"x\u202elmot.toml": runcHandler},
			want: []string{`{p}/x\u202elmot.toml: a policy file name must not contain`}},
	)
	// TOML itself: syntax, duplicates, types, spellings, depth, size; and
	// what go-toml v1 (containerd 1.x) and v2 read differently.
	add(
		pol("syntax error", "[handlers.x\n", "{p}/a.toml:1:"),
		pol("unknown top-level key", "[handlerz.x]\nruntime_type = \"io.containerd.runc.v2\"\n", "{p}/a.toml:1:2: unknown key handlerz"),
		pol("unknown handler key", runcHandler+"runtime_engine = \"/usr/bin/x\"\n", "{p}/a.toml:3:1: unknown key handlers.x.runtime_engine"),
		pol("table name in another casing", "[HANDLERS.x]\nruntime_type = \"io.containerd.runc.v2\"\n", "{p}/a.toml:1:2", "write handlers"),
		pol("key in another casing", "[handlers.x]\nRUNTIME_TYPE = \"io.containerd.runc.v2\"\n", "{p}/a.toml:2:1", "write runtime_type"),
		pol("one key under two casings", runcHandler+"runtime_path = \"/usr/bin/a\"\nRuntime_Path = \"/tmp/b\"\n", "{p}/a.toml:4:1", "write runtime_path"),
		pol("duplicate key", runcHandler+"runtime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:3:1", "already defined"),
		pol("duplicate table", runcHandler+"[handlers.x]\n", "{p}/a.toml:3:", "already exists"),
		pol("duplicate table under two quotings", runcHandler+"[handlers.'x']\n", "{p}/a.toml:3:", "already exists"),
		pol("table defined by a dotted key, then by a header", "[handlers]\nx.runtime_type = \"io.containerd.runc.v2\"\n[handlers.x]\n", "{p}/a.toml:3:", "already exists"),
		pol("inline table extended later", "[handlers]\nx = { runtime_type = \"io.containerd.runc.v2\" }\n[handlers.x.options]\n", "{p}/a.toml:3:"),
		pol("array of tables", "[[handlers.x]]\nruntime_type = \"io.containerd.runc.v2\"\n", "{p}/a.toml:1:"),
		pol("handlers not a table", "handlers = 1\n", "{p}/a.toml:1:"),
		pol("handler not a table", "[handlers]\nx = \"kata\"\n", "{p}/a.toml:2:"),
		pol("wrong type", "[handlers.x]\nruntime_type = 2\n", "{p}/a.toml:2:", "runtime_type"),
		pol("byte order mark", "\ufeff"+runcHandler, "{p}/a.toml:1:1"),
		pol("raw NUL byte", runcHandler+"runtime_path = \"/usr/bin/x\x00\"\n", "{p}/a.toml:3:"),
		pol("invalid UTF-8 in a string", runcHandler+"runtime_path = \"/usr/bin/\xff\"\n", "{p}/a.toml:3:", "invalid UTF-8"),
		pol("invalid UTF-8 in a comment", "# \xc3\x28\n"+runcHandler, "{p}/a.toml:1:", "invalid UTF-8"),
		pol("bare carriage return ends a line", "[handlers.x]\rruntime_type = \"io.containerd.runc.v2\"\n", "{p}/a.toml:1:"),
		pol("very deep nesting", kataOpts+"a = "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n", "{p}/a.toml:4:", "nested more than the maximum"),
		pol("arrays nested five deep", kataOpts+"a = [[[[[1]]]]]\n", "{p}/a.toml:4:1", "handlers.x.options.a", "nested more than 4 levels"),
		pol("deep inline tables", kataOpts+"a = {b = {c = {d = {e = 1}}}}\n", "{p}/a.toml:4:21", "handlers.x.options.a.b.c.d.e", "nested more than 4 levels"),
		pol("huge array of annotations", "[handlers.x]\npreset = \"kata\"\npod_annotations = ["+strings.Repeat("\"io.katacontainers.config.x\",", 300)+"]\n", "{p}/a.toml:3:1", "list of 300 values; at most 256"),
		pol("huge array in options", kataOpts+"a = ["+strings.Repeat("1,", 100000)+"]\n", "{p}/a.toml:4:1", "list of 100000 values"),
		pol("huge string in options", kataOpts+"a = \""+strings.Repeat("x", 100000)+"\"\n", "{p}/a.toml:4:1", "string of 100000 bytes"),
		pol("huge path", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/"+strings.Repeat("x", 5000)+"\"\n", "{p}/a.toml:3:1", "string of 5005 bytes"),
		pol("too many options", kataOpts+manyKeys(70), "{p}/a.toml:3:", "70 options; at most 64"),
	)
	// Handler names: DNS-1123 labels, nothing that can look like something else.
	add(
		pol("name in capitals", "[handlers.Kata]\nruntime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:1:11", "DNS-1123"),
		pol("name with an underscore", "[handlers.ka_ta]\nruntime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:1:11", "DNS-1123"),
		pol("name too long", "[handlers."+strings.Repeat("a", 64)+"]\nruntime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:1:11", "DNS-1123"),
		pol("empty name", "[handlers.\"\"]\nruntime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:1:11", "DNS-1123"),
		pol("name with a newline and a fake marker", "[handlers.\"x\\n# runtimeclassd:end handler=y\"]\nruntime_type = \"io.containerd.kata.v2\"\n", `{p}/a.toml:1:11: handlers."x\n# runtimeclassd:end handler=y"`, "DNS-1123"),
		pol("name with a bidi override", "[handlers.\"ka\\u202eta\"]\nruntime_type = \"io.containerd.kata.v2\"\n", `{p}/a.toml:1:11: handlers."ka\u202eta"`, "DNS-1123"),
		pol("name with NUL", "[handlers.\"ka\\u0000ta\"]\nruntime_type = \"io.containerd.kata.v2\"\n", `handlers."ka\x00ta"`, "DNS-1123"),
		pol("name with a dot", "[handlers.\"a.b\"]\nruntime_type = \"io.containerd.kata.v2\"\n", `{p}/a.toml:1:11: handlers."a.b"`, "DNS-1123"),
		pol("name with a zero-width joiner", "[handlers.\"ka\\u200dta\"]\nruntime_type = \"io.containerd.kata.v2\"\n", "{p}/a.toml:1:11", "DNS-1123"),
	)
	// The runtime's own keys.
	add(
		pol("runtime_type not io.containerd.NAME.vN", "[handlers.x]\nruntime_type = \"kata\"\n", "{p}/a.toml:2:1", "io.containerd.NAME.vN"),
		pol("runtime_type with a newline", "[handlers.x]\nruntime_type = \"io.containerd.kata.v2\\nruntime_path = \\\"/tmp/x\\\"\"\n", "{p}/a.toml:2:1", "io.containerd.NAME.vN"),
		pol("runtime_type with a bidi override", "[handlers.x]\nruntime_type = \"io.containerd.\\u202ekata.v2\"\n", "{p}/a.toml:2:1", "io.containerd.NAME.vN"),
		pol("runtime_type missing", "[handlers.x]\nprivileged_without_host_devices = true\n", "{p}/a.toml:1:11", "runtime_type is required"),
		pol("unknown preset", "[handlers.x]\npreset = \"katta\"\n", "{p}/a.toml:2:1", `unknown preset "katta"`),
		pol("preset with a newline", "[handlers.x]\npreset = \"kata\\n\"\n", "{p}/a.toml:2:1", `unknown preset "kata\n"`),
		pol("snapshotter injection", runcHandler+"snapshotter = \"a\\\"]\\n[x]\"\n", "{p}/a.toml:3:1", "not a plain name"),
		pol("sandboxer with a newline", runcHandler+"sandboxer = \"a\\nb\"\n", "{p}/a.toml:3:1", "not a plain name"),
		pol("io_type with a space", runcHandler+"io_type = \"a b\"\n", "{p}/a.toml:3:1", "not a plain name"),
	)
	// Paths: absolute, clean, under an allowed prefix, printable.
	rp := func(name, p string, want ...string) hostileCase {
		return pol(name, "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \""+p+"\"\n", append([]string{"{p}/a.toml:3:1"}, want...)...)
	}
	add(
		rp("relative path", "bin/shim", "must be absolute"),
		rp("path with ..", "/usr/../tmp/shim", "must be clean"),
		rp("path with //", "/usr//bin/shim", "must be clean"),
		rp("path with a trailing /.", "/usr/bin/.", "must be clean"),
		rp("path with a trailing /", "/usr/bin/", "must be clean"),
		rp("path outside the prefixes", "/tmp/shim", "not under an allowed prefix"),
		rp("prefix lookalike", "/usrlocal/shim", "not under an allowed prefix"),
		rp("path through /proc", "/proc/self/root/usr/bin/shim", "not under an allowed prefix"),
		rp("path with NUL", `/usr/bin/shim\u0000.so`, "U+0000"),
		rp("path with a newline and a fake marker", `/usr/bin/x\n# runtimeclassd:end handler=x`, "U+000A"),
		rp("path with a bidi override", `/usr/bin/\u202egnp.sh`, "U+202E"),
		rp("path with a line separator", `/usr/bin/a\u2028b`, "U+2028"),
		pol("base_runtime_spec outside the prefixes", runcHandler+"base_runtime_spec = \"/home/eve/spec.json\"\n", "{p}/a.toml:3:1", "not under an allowed prefix"),
		pol("requires a relative path", "[handlers.x]\npreset = \"kata\"\nrequires = [\"path:dev/kvm\"]\n", "{p}/a.toml:3:1", "must be absolute"),
		pol("requires a path outside the prefixes", "[handlers.x]\npreset = \"kata\"\nrequires = [\"path:/tmp/flag\"]\n", "{p}/a.toml:3:1", "not under an allowed prefix"),
		pol("requires an unknown check", "[handlers.x]\npreset = \"kata\"\nrequires = [\"sgx\"]\n", "{p}/a.toml:3:1", `unknown check "sgx"`),
		pol("requires with a newline", "[handlers.x]\npreset = \"kata\"\nrequires = [\"kvm\\nnvidia\"]\n", "{p}/a.toml:3:1", `unknown check "kvm\nnvidia"`),
	)
	// Annotations: no wildcard, nothing unprintable.
	add(
		pol("wildcard annotation", "[handlers.x]\npreset = \"kata\"\npod_annotations = [\"io.katacontainers.*\"]\n", "{p}/a.toml:3:1", "wildcard"),
		pol("bare star", "[handlers.x]\npreset = \"kata\"\ncontainer_annotations = [\"*\"]\n", "{p}/a.toml:3:1", "wildcard"),
		pol("annotation with a newline", "[handlers.x]\npreset = \"kata\"\npod_annotations = [\"a\\nb\"]\n", "{p}/a.toml:3:1", `"a\nb" is not a valid annotation key`),
		pol("annotation with a bidi override", "[handlers.x]\npreset = \"kata\"\npod_annotations = [\"io.kata\\u202e\"]\n", "{p}/a.toml:3:1", "not a valid annotation key"),
	)
	// Options under every spelling containerd accepts (hole 1).
	for _, k := range []string{"binaryname", "BINARYNAME", "binaryName", "bInArYnAmE"} {
		add(pol("runc option "+k, runcOpts+k+" = \"/tmp/evil/runc\"\n", "{p}/a.toml:4:1", "handlers.x.options."+k, `path "/tmp/evil/runc" is not under an allowed prefix`))
	}
	for _, k := range []string{"root", "ROOT", "criuimagepath", "CriuWorkpath"} {
		add(pol("runc option "+k, runcOpts+k+" = \"/home/eve/x\"\n", "{p}/a.toml:4:1", "handlers.x.options."+k, "not under an allowed prefix"))
	}
	for _, k := range []string{"configpath", "CONFIGPATH", "configPath"} {
		add(pol("kata option "+k, kataOpts+k+" = \"/home/eve/kata.toml\"\n", "{p}/a.toml:4:1", "handlers.x.options."+k, "not under an allowed prefix"))
	}
	add(
		pol("runc option with a dotted capital I (folds to binaryname in Go)", runcOpts+"\"B\\u0130naryName\" = \"/tmp/evil\"\n", "{p}/a.toml:4:1", `"B\u0130naryName" must be letters`),
		pol("runc option with a Kelvin sign (folds to k in Go)", runcOpts+"\"NoNew\\u212aeyring\" = true\n", "{p}/a.toml:4:1", `"NoNew\u212aeyring" must be letters`),
		pol("BinaryName under two spellings", runcOpts+"BinaryName = \"/usr/bin/crun\"\nbinaryname = \"/usr/bin/runc\"\n", "{p}/a.toml:5:1", "binaryname is also set as BinaryName"),
		pol("Root under two spellings", runcOpts+"ROOT = \"/etc/a\"\nRoot = \"/etc/b\"\n", "{p}/a.toml:5:1", "Root is also set as ROOT"),
		pol("preset's BinaryName overridden in another casing", "[handlers.x]\npreset = \"crun\"\n[handlers.x.options]\nbinaryname = \"/tmp/evil\"\n", "{p}/a.toml:4:1", "handlers.x.options.binaryname", "not under an allowed prefix"),
		pol("unknown runc option", runcOpts+"BinaryNam = \"/usr/bin/crun\"\n", "{p}/a.toml:4:1", "did you mean BinaryName?"),
		pol("runc option CriuPath", runcOpts+"CriuPath = \"/usr/sbin/criu\"\n", "{p}/a.toml:4:1", "CriuPath is deprecated"),
		pol("runc option TaskApiAddress", runcOpts+"TaskApiAddress = \"ttrpc+unix:///tmp/x.sock\"\n", "{p}/a.toml:4:1", "set by containerd's clients"),
		pol("runc option of the wrong type", runcOpts+"SystemdCgroup = \"true\"\n", "{p}/a.toml:4:1", "SystemdCgroup must be true or false"),
		pol("runc IoUid out of range", runcOpts+"IoUid = -1\n", "{p}/a.toml:4:1", "IoUid must be an integer from 0"),
		pol("ConfigBody", kataOpts+"ConfigBody = \"[hypervisor.qemu]\"\n", "{p}/a.toml:4:1", "containerd fills ConfigBody itself"),
		pol("unknown shim's binary", kataOpts+"binary_name = \"/tmp/evil\"\n", "{p}/a.toml:4:1", "handlers.x.options.binary_name", "not under an allowed prefix"),
		pol("unknown shim's relative binary", kataOpts+"shim_bin = \"evil\"\n", "{p}/a.toml:4:1", "must be absolute"),
		pol("unknown shim's nested path", kataOpts+"[handlers.x.options.runsc_config]\ndebug-log = \"/var/log/runsc/\"\n", "{p}/a.toml:5:1", "handlers.x.options.runsc_config.debug-log", "must be clean"),
		pol("unknown shim's absolute value under any key", kataOpts+"Anything = \"/var/tmp/x\"\n", "{p}/a.toml:4:1", "not under an allowed prefix"),
		pol("unknown shim's path in a list", kataOpts+"args = [\"--root\", \"/run/x\"]\n", "{p}/a.toml:4:1", "not under an allowed prefix"),
		pol("option key with a control character", kataOpts+"\"a\\u0001\" = 1\n", "{p}/a.toml:4:1", `"a\x01" must be letters`),
		pol("option key with a bidi override", kataOpts+"\"a\\u202eb\" = 1\n", "{p}/a.toml:4:1", `"a\u202eb" must be letters`),
		pol("option key with a dot", kataOpts+"\"a.b\" = 1\n", "{p}/a.toml:4:1", `"a.b" must be letters`),
		pol("option value with a newline and a fake marker", kataOpts+"Note = \"a\\n# runtimeclassd:end handler=x\"\n", "{p}/a.toml:4:1", "U+000A"),
		pol("option value with a bidi override", kataOpts+"Note = \"abc\\u202edef\"\n", "{p}/a.toml:4:1", "U+202E"),
		pol("option value with a line separator", kataOpts+"Note = \"a\\u2028b\"\n", "{p}/a.toml:4:1", "U+2028"),
		pol("option value with NUL", kataOpts+"Note = \"a\\u0000b\"\n", "{p}/a.toml:4:1", "U+0000"),
		pol("option nan", kataOpts+"Weight = nan\n", "{p}/a.toml:4:1", "NaN is not a finite number"),
		pol("option inf", kataOpts+"Weight = +inf\n", "{p}/a.toml:4:1", "+Inf is not a finite number"),
		pol("option -inf in a list", kataOpts+"Weights = [1.0, -inf]\n", "{p}/a.toml:4:1", "-Inf is not a finite number"),
		pol("option date", kataOpts+"When = 1979-05-27\n", "{p}/a.toml:4:1", "not supported in options"),
	)
	add(hostileCase{name: "one handler defined differently in two files", stage: atPolicy, files: map[string]string{
		"10-a.toml": "[handlers.x]\npreset = \"crun\"\n",
		"20-b.toml": "[handlers.x]\npreset = \"crun\"\n[handlers.x.options]\nBinaryName = \"/usr/bin/runc\"\n",
	}, want: []string{"{p}/20-b.toml", "also defined, differently, in {p}/10-a.toml"}})

	// The host: shims and files trusted only through safe directories (hole 2).
	host := func(name, body string, setup func(t *testing.T, n *node), want ...string) hostileCase {
		return hostileCase{name: name, stage: atHost, files: one(body), setup: setup, want: want}
	}
	add(
		host("shim reached through a symlink in a world-writable directory", evilHandler, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/evil/shim", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/usr/lib/evil/shim", "/var/ww/shim")
			hostLink(t, n, "/var/ww/shim", "/usr/bin/containerd-shim-evil-v2")
		}, "/usr/bin/containerd-shim-evil-v2: directory /var/ww is group- or world-writable"),
		host("runtime_path through a symlink chain with a sticky world-writable hop", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/lib/x/shim\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/real/shim", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/var/tmp", os.ModeSticky|0o777)
			hostLink(t, n, "/usr/lib/real/shim", "/var/tmp/hop")
			hostDir(t, n, "/usr/lib/x", 0o755)
			hostLink(t, n, "../../../var/tmp/hop", "/usr/lib/x/shim")
		}, "runtime_path /usr/lib/x/shim: directory /var/tmp is group- or world-writable (mode 1777)"),
		host("runtime_path under a symlinked parent a user owns", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/lib/eve/shim\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/home/eve/shim", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/home/eve"))
			hostLink(t, n, "/home/eve", "/usr/lib/eve")
		}, "runtime_path /usr/lib/eve/shim: directory /home/eve is owned by uid 1000"),
		host("shim hardlinked to a file a user owns", evilHandler, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/eve-shim", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/usr/lib/eve-shim"))
			if err := os.Link(filepath.Join(n.hostRoot, "/usr/lib/eve-shim"), filepath.Join(n.hostRoot, "/usr/bin/containerd-shim-evil-v2")); err != nil {
				t.Fatal(err)
			}
		}, "/usr/bin/containerd-shim-evil-v2 is owned by uid 1000"),
		host("shim in a directory a user owns, who could swap it between check and use", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/opt/eve/shim\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/opt/eve/shim", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
		}, "runtime_path /opt/eve/shim: directory /opt/eve is owned by uid 1000"),
		host("shim group-writable", evilHandler, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/containerd-shim-evil-v2", "#!/bin/sh\n", 0o775)
		}, "/usr/bin/containerd-shim-evil-v2 is group- or world-writable (mode 0775)"),
		host("shim owned by a user", evilHandler, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/containerd-shim-evil-v2", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/usr/bin/containerd-shim-evil-v2"))
		}, "/usr/bin/containerd-shim-evil-v2 is owned by uid 1000"),
		hostileCase{name: "world-writable directory searched before the shim", stage: atHost, files: one("[handlers.x]\npreset = \"gvisor\"\n"),
			args: []string{"--shim-path", "/usr/local/bin:/usr/bin"}, setup: func(t *testing.T, n *node) {
				hostDir(t, n, "/usr/local/bin", 0o777)
			}, want: []string{"shim path /usr/local/bin: directory /usr/local/bin is group- or world-writable"}},
		host("BinaryName world-writable", "[handlers.x]\npreset = \"crun\"\n", func(t *testing.T, n *node) {
			os.Chmod(filepath.Join(n.hostRoot, "/usr/bin/crun"), 0o777)
		}, "options.BinaryName", "/usr/bin/crun is group- or world-writable"),
		host("BinaryName through a world-writable hop", "[handlers.x]\npreset = \"crun\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/crun/crun", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/usr/lib/crun/crun", "/var/ww/crun")
			os.Remove(filepath.Join(n.hostRoot, "/usr/bin/crun"))
			hostLink(t, n, "/var/ww/crun", "/usr/bin/crun")
		}, "options.BinaryName", "directory /var/ww is group- or world-writable"),
		host("lowercase binaryname gets the file checks too", runcOpts+"binaryname = \"/usr/bin/crun\"\n", func(t *testing.T, n *node) {
			os.Chmod(filepath.Join(n.hostRoot, "/usr/bin/crun"), 0o757)
		}, "options.BinaryName", "/usr/bin/crun is group- or world-writable"),
		host("ConfigPath owned by a user", kataOpts+"configpath = \"/etc/kata/configuration.toml\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/etc/kata/configuration.toml", "[hypervisor.qemu]\n", 0o644)
			chown(t, filepath.Join(n.hostRoot, "/etc/kata/configuration.toml"))
		}, "options.ConfigPath", "/etc/kata/configuration.toml is owned by uid 1000"),
		host("ConfigPath is a FIFO", kataOpts+"ConfigPath = \"/etc/kata/configuration.toml\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/etc/kata", 0o755)
			if err := syscall.Mkfifo(filepath.Join(n.hostRoot, "/etc/kata/configuration.toml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "options.ConfigPath", "not a regular file"),
		host("base_runtime_spec is a device node", runcHandler+"base_runtime_spec = \"/etc/spec.json\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/etc", 0o755)
			if err := syscall.Mknod(filepath.Join(n.hostRoot, "/etc/spec.json"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
				t.Fatal(err)
			}
		}, "base_runtime_spec", "not a regular file"),
		host("runtime_path is a directory", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/lib/x\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/usr/lib/x", 0o755)
		}, "runtime_path /usr/lib/x: not a regular file"),
		host("runc Root under a directory a user owns", runcOpts+"root = \"/opt/eve/runc\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/opt/eve", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
		}, "options.Root", "directory /opt/eve is owned by uid 1000"),
		host("runc Root a world-writable directory", runcOpts+"Root = \"/etc/runc\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/etc/runc", 0o777)
		}, "options.Root", "directory /etc/runc is group- or world-writable"),
		host("unknown shim's path option in a world-writable directory", "[handlers.x]\npreset = \"gvisor\"\n[handlers.x.options]\nbinary_name = \"/usr/lib/ww/runsc\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/usr/lib/ww", 0o777)
		}, "options.binary_name", "directory /usr/lib/ww is group- or world-writable"),
		host("requires path: through a world-writable hop", "[handlers.x]\npreset = \"gvisor\"\nrequires = [\"path:/etc/flag\"]\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/flag", "", 0o644)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/usr/lib/flag", "/var/ww/flag")
			hostLink(t, n, "/var/ww/flag", "/etc/flag")
		}, "path:/etc/flag", "directory /var/ww is group- or world-writable"),
		host("Kata's hypervisor through a world-writable hop", "[handlers.x]\npreset = \"kata\"\nrequires = [\"kata-config\"]\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/opt/kata/bin/qemu", "#!/bin/sh\n", 0o755)
			hostFile(t, n, "/opt/kata/vmlinux", "k", 0o644)
			hostFile(t, n, "/opt/kata/image", "i", 0o644)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/opt/kata/bin/qemu", "/var/ww/qemu")
			hostFile(t, n, "/opt/kata/share/defaults/kata-containers/configuration.toml",
				"[hypervisor.qemu]\npath = \"/var/ww/qemu\"\nkernel = \"/opt/kata/vmlinux\"\nimage = \"/opt/kata/image\"\n", 0o644)
		}, "kata-config", "path /var/ww/qemu: directory /var/ww is group- or world-writable"),
	)
	// containerd reads the candidate differently than written (hole 3):
	// containerd 1.6 drops runtime keys it doesn't know.
	for _, kv := range []string{"snapshotter = \"native\"", "sandboxer = \"podsandbox\"", "io_type = \"fifo\"", "privileged_without_host_devices_all_devices_allowed = true"} {
		key, _, _ := strings.Cut(kv, " ")
		add(hostileCase{name: "containerd 1.6 drops " + key, stage: atContainerd, files: one("[handlers.x]\npreset = \"crun\"\n" + kv + "\n"),
			want: []string{"{c} (candidate), as containerd 1.6", `runtime "x": key ` + kv + " was written but containerd dropped it"}})
	}
	for _, more := range moreHostileCases {
		add(more()...)
	}
	return cs
}

// onBoth plays a group's cases on containerd 1.6 and again on 2.4.2 (a
// copy named "... (2.4.2)"): what a handler makes the shim and the
// runtime run doesn't depend on containerd's version, and the refusal
// must not either.
func onBoth(cases func() []hostileCase) func() []hostileCase {
	return func() []hostileCase {
		var out []hostileCase
		for _, c := range cases() {
			out = append(out, c)
			if c.major == 0 {
				c.major, c.name = 2, c.name+" (2.4.2)"
				out = append(out, c)
			}
		}
		return out
	}
}

// moreHostileCases are groups of cases kept in their own files (one per
// area: hostile_*_test.go), each registering itself from init.
var moreHostileCases []func() []hostileCase

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root: policy files and fake hosts must be root-owned")
	}
	cases := hostileCases()
	var changed atomic.Int32
	t.Run("cases", func(t *testing.T) {
		seen := map[string]bool{}
		for _, c := range cases {
			if seen[c.name] || len(c.want) == 0 {
				t.Fatalf("case %q: a second case of that name, or nothing to look for in the refusal", c.name)
			}
			seen[c.name] = true
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				if c.run(t) {
					changed.Add(1)
				}
			})
		}
	})
	// make test greps this line.
	t.Logf("hostile-input suite: %d cases, %d changed config.toml", len(cases), changed.Load())
	if changed.Load() != 0 {
		t.Errorf("%d cases changed config.toml", changed.Load())
	}
	doc, err := os.ReadFile("../../docs/SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d cases, 0 of them changed config.toml", len(cases)); !bytes.Contains(doc, []byte(want)) {
		t.Errorf("docs/SECURITY.md does not say %q", want)
	}
}

// run plays one case and reports whether config.toml changed.
func (c hostileCase) run(t *testing.T) bool {
	major, corpus := 1, "v2-default-1.6.toml"
	if c.major == 2 {
		major, corpus = 2, "v4-default-2.4.toml"
	}
	orig := readCorpus(t, corpus)
	n := newNode(t, major, orig)
	if c.imports {
		orig = withNodeImports(t, orig, n)
		write(t, n.config, string(orig), 0o644)
	}
	if err := os.Chmod(n.config, 0o640); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(n.config)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range c.files {
		write(t, filepath.Join(n.policy, name), body, 0o644)
	}
	if c.setup != nil {
		c.setup(t, n)
	}
	repl := strings.NewReplacer("{p}", n.policy, "{d}", n.dir, "{c}", n.config)
	want := make([]string, len(c.want))
	for i, w := range c.want {
		want[i] = repl.Replace(w)
	}
	c.args = append([]string(nil), c.args...)
	for i, a := range c.args {
		c.args[i] = repl.Replace(a)
	}
	expect := func(args []string, code int, out *bytes.Buffer, extra ...string) {
		t.Helper()
		got := n.run(append(args, c.args...)...)
		if got != code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, code, &n.stdout, &n.stderr)
			return
		}
		for _, w := range append(want, extra...) {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output does not contain %q:\n%s", args, w, out)
			}
		}
	}
	switch c.stage {
	case atPolicy:
		expect([]string{"apply", "--dry-run"}, 1, &n.stderr)
		expect([]string{"apply", "--no-restart"}, 1, &n.stderr)
		expect([]string{"check"}, 1, &n.stderr)
	case atHost:
		expect([]string{"check"}, 1, &n.stdout)
		expect([]string{"apply", "--no-restart"}, 0, &n.stderr, "withheld: x is not ready")
	case atContainerd:
		expect([]string{"apply", "--dry-run"}, 1, &n.stderr)
		expect([]string{"apply", "--no-restart"}, 1, &n.stderr)
	case atWrite:
		var both bytes.Buffer
		args := append([]string{"apply", "--no-restart"}, c.args...)
		if got := n.run(args...); got != c.code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, c.code, &n.stdout, &n.stderr)
		}
		both.Write(n.stdout.Bytes())
		both.Write(n.stderr.Bytes())
		for _, w := range want {
			if !strings.Contains(both.String(), w) {
				t.Errorf("%v: output does not contain %q:\n%s", args, w, &both)
			}
		}
	}
	if c.after != nil {
		c.after(t, n)
	}
	after, err := os.Stat(n.config)
	changed := err != nil || !bytes.Equal(n.read(), orig) || !os.SameFile(before, after) || after.Mode() != before.Mode()
	if changed {
		t.Error("config.toml was changed")
	}
	if b, _ := filepath.Glob(filepath.Join(n.state, "backups", "*")); len(b) != 0 {
		t.Errorf("backups written: %v", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(n.config), ".*")); len(left) != 0 {
		t.Errorf("temp files left next to config.toml: %v", left)
	}
	checkNothingClaimed(t, n)
	return changed
}

// withNodeImports is a default config whose imports line names the node's
// conf.d instead (2.4.2's imports the machine's /etc/containerd/conf.d,
// 1.6's nothing).
func withNodeImports(t *testing.T, config []byte, n *node) []byte {
	t.Helper()
	line := []byte("imports = ['" + filepath.Join(filepath.Dir(n.config), "conf.d", "*.toml") + "']")
	for _, def := range []string{"imports = ['/etc/containerd/conf.d/*.toml']", "imports = []"} {
		if bytes.Contains(config, []byte(def)) {
			return bytes.Replace(config, []byte(def), line, 1)
		}
	}
	t.Fatal("withNodeImports: the config has no default imports line")
	return nil
}

// checkNothingClaimed: the refusal may be recorded (for `status`), but no
// pending apply, and nothing that offers the handler, in the state file or
// the node labels.
func checkNothingClaimed(t *testing.T, n *node) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(n.state, "state.json")); err == nil {
		var st struct {
			Pending  json.RawMessage `json:"pending"`
			Handlers []struct {
				Name    string `json:"name"`
				Offered bool   `json:"offered"`
			} `json:"handlers"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Errorf("state.json: %v", err)
		}
		if len(st.Pending) > 0 && string(st.Pending) != "null" {
			t.Errorf("state.json records a pending apply: %s", st.Pending)
		}
		for _, h := range st.Handlers {
			if h.Offered {
				t.Errorf("state.json offers %s", h.Name)
			}
		}
	}
	if b, err := os.ReadFile(n.nfd); err == nil && bytes.Contains(b, []byte("=true")) {
		t.Errorf("node labels offer a handler:\n%s", b)
	}
}

// atLimit pads a policy that opens a string so that, closed, it is exactly
// MaxFileSize bytes.
func atLimit(prefix string) string {
	const tail = "\"\n"
	return prefix + strings.Repeat("x", policy.MaxFileSize-len(prefix)-len(tail)) + tail
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d = %d\n", i, i)
	}
	return b.String()
}

func chmodP(name string, mode os.FileMode) func(*testing.T, *node) {
	return func(t *testing.T, n *node) {
		if err := os.Chmod(filepath.Join(n.policy, name), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func chownP(name string) func(*testing.T, *node) {
	return func(t *testing.T, n *node) { chown(t, filepath.Join(n.policy, name)) }
}

func chown(t *testing.T, p string) {
	t.Helper()
	if err := os.Lchown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func hostFile(t *testing.T, n *node, p, body string, mode os.FileMode) {
	write(t, filepath.Join(n.hostRoot, p), body, mode)
}

func hostDir(t *testing.T, n *node, p string, mode os.FileMode) {
	mkdir(t, filepath.Join(n.hostRoot, p), mode)
}

// hostLink makes p a symlink to target inside the fake host.
func hostLink(t *testing.T, n *node, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(n.hostRoot, filepath.Dir(p)), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, target, filepath.Join(n.hostRoot, p))
}

// TestMetricsListenOnLoopbackByDefault: the metrics endpoint names handlers
// and host paths; it is offered to the network only when asked for (issue
// 7, item 5).
func TestMetricsListenOnLoopbackByDefault(t *testing.T) {
	t.Parallel()
	ap, err := netip.ParseAddrPort(defaultListen)
	if err != nil || !ap.Addr().IsLoopback() || ap.Port() != 9864 {
		t.Fatalf("default --web.listen-address %q is not a loopback address on port 9864 (%v)", defaultListen, err)
	}
}

// TestRealContainerdRunsBinaryNameInAnySpelling shows, with the real
// containerd 2.4.2, why option spellings matter: containerd reads runc's
// BinaryName from `binaryname` too, even from `B\u0130naryName`, and
// executes it as root when its CRI plugin starts (it asks each runc
// handler's binary for its features). The policy refuses such keys or
// writes them as BinaryName, which reaches containerd as written.
func TestRealContainerdRunsBinaryNameInAnySpelling(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	bin := containerdBin(t, 2)
	for _, tc := range []struct {
		name    string
		written func(t *testing.T, runtimes, fake string) string
	}{
		{"a hand-written lowercase key", func(t *testing.T, runtimes, fake string) string {
			return fmt.Sprintf("[%s.x]\n  runtime_type = \"io.containerd.runc.v2\"\n  [%s.x.options]\n    binaryname = %q\n", runtimes, runtimes, fake)
		}},
		{"a key with a dotted capital I, which Go lowercases to i", func(t *testing.T, runtimes, fake string) string {
			return fmt.Sprintf("[%s.x]\n  runtime_type = \"io.containerd.runc.v2\"\n  [%s.x.options]\n    \"B\\u0130naryName\" = %q\n", runtimes, runtimes, fake)
		}},
		{"a policy's lowerCamel key, as runtimeclassd writes it", func(t *testing.T, runtimes, fake string) string {
			hs, err := policy.Parse("p.toml", []byte(runcOpts+"binaryName = \""+fake+"\"\n"), policy.Options{AllowedPrefixes: []string{filepath.Dir(fake)}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := ctrdconfig.Patch([]byte("version = 3\n"), []ctrdconfig.Runtime{{Name: "x", Fields: hs[0].Fields(), Options: hs[0].Options}}, ctrdconfig.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(res.Out, []byte("\n    BinaryName = \""+fake+"\"\n")) {
				t.Fatalf("not written as BinaryName:\n%s", res.Out)
			}
			_, body, _ := strings.Cut(string(res.Out), "\n")
			return body
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "ran")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			fake := filepath.Join(dir, "bin", "fake-runc")
			write(t, fake, "#!/bin/sh\necho \"$@\" > "+fifo+"\nexit 1\n", 0o755)
			cfg := fmt.Sprintf("version = 3\nroot = %q\nstate = %q\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
				filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock"), filepath.Join(dir, "c.sock.ttrpc"))
			cfg += tc.written(t, "plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes", fake)
			write(t, filepath.Join(dir, "config.toml"), cfg, 0o644)
			args := ranWith(t, bin, filepath.Join(dir, "config.toml"), fifo)
			if args != "features" {
				t.Fatalf("containerd ran %s with %q, want features", fake, args)
			}
		})
	}
}

// ranWith starts containerd on config and returns the arguments the fake
// runtime was run with, read from the FIFO it writes them to.
func ranWith(t *testing.T, bin, config, fifo string) string {
	t.Helper()
	cmd := exec.Command(bin, "--config", config)
	// The runc shim is looked up on PATH, next to this containerd.
	cmd.Env = []string{"PATH=" + filepath.Dir(bin) + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo) // blocks until the fake runtime opens it
		got <- strings.TrimSpace(string(b))
	}()
	select {
	case s := <-got:
		return s
	case err := <-exited:
		unblock(fifo)
		t.Fatalf("containerd exited (%v) without running the runtime:\n%s", err, &logs)
	case <-time.After(2 * time.Minute):
		unblock(fifo)
		t.Fatalf("containerd did not run the runtime within 2 minutes:\n%s", &logs)
	}
	return ""
}

// unblock opens a FIFO for writing, so that its blocked reader returns.
func unblock(fifo string) {
	if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}
