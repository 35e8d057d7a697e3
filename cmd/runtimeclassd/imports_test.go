package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportedKeysAfterWrite: a handler runtimeclassd wrote into
// config.toml, into which a file config.toml imports later merges keys of
// its own, is no longer offered, and its block stays as it is (without
// it, containerd would be left with the other file's keys alone), on 1.6
// and, in patch mode, 2.4.2.
func TestImportedKeysAfterWrite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		major  int
		corpus string
		other  string
	}{
		{"1.6", 1, "v2-default-1.6.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"/usr/bin/crun\"\n"},
		{"2.4.2", 2, "v4-default-2.4.toml", "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.x.options]\nBinaryName = '/usr/bin/crun'\n"},
		// No version line, 1.x's plugin name: 2.4.2 merges it all the same.
		{"2.4.2 unversioned", 2, "v4-default-2.4.toml", "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"/usr/bin/crun\"\n"},
	} {
		major, corpus, other := c.major, c.corpus, c.other
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, major, readCorpus(t, corpus))
			write(t, n.config, string(withNodeImports(t, n.read(), n)), 0o644)
			n.policyFile("a.toml", runcHandler)
			if code := n.run("apply", "--no-restart", "--mode", "patch"); code != 0 {
				t.Fatalf("first apply: exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
			written := n.read()
			if !bytes.Contains(written, []byte("runtimeclassd:begin handler=x")) {
				t.Fatalf("the handler was not written:\n%s", written)
			}
			f := filepath.Join(filepath.Dir(n.config), "conf.d", "90-other.toml")
			write(t, f, other, 0o644)
			if code := n.run("apply", "--no-restart", "--mode", "patch"); code != 0 {
				t.Fatalf("second apply: exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
			out := n.stdout.String() + n.stderr.String()
			for _, w := range []string{`handler "x" is overridden by ` + f + " (options.BinaryName)", "the handler is not offered"} {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			if got := n.read(); !bytes.Equal(got, written) {
				t.Errorf("config.toml changed:\n%s", got)
			}
			b, err := os.ReadFile(filepath.Join(n.state, "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Handlers []struct {
					Name    string `json:"name"`
					Offered bool   `json:"offered"`
				} `json:"handlers"`
			}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			for _, h := range st.Handlers {
				if h.Name == "x" && h.Offered {
					t.Errorf("state.json offers x:\n%s", b)
				}
			}
			if strings.Contains(n.labels(), "x=true") {
				t.Errorf("labels offer x:\n%s", n.labels())
			}
		})
	}
}
