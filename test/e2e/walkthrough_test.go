//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's walkthrough, run as written: every shell block marked
// <!-- walkthrough:node --> runs in order, as root, in a fresh Debian 12
// node with containerd 1.6 (runtimeclassd not installed yet: the
// walkthrough installs it), and the output of each must show what the
// README's <!-- walkthrough:output --> block after it says you will see.
// So the walkthrough can't rot: a changed command, flag or output fails
// here.

// walkStep is a shell block of the walkthrough and what its output shows.
type walkStep struct {
	line   int // in README.md
	script string
	want   []string // lines, "..." matching anything
	where  string   // of <!-- walkthrough:KIND:WHERE -->; "" for KIND alone
}

func TestWalkthrough(t *testing.T) {
	t.Parallel()
	steps, err := walkthrough(filepath.Join(repoDir, "README.md"), "node")
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 5 {
		t.Fatalf("README.md has %d walkthrough:node blocks; the walkthrough has lost its markers", len(steps))
	}
	n := bootNodeWith(t, "rcd-walk", 1, nodeOptions{noPackage: true})
	// What the README takes for granted on the node: the package file in
	// the working directory, and an image named busybox (no registry here;
	// the README says where it comes from).
	n.copyFile(debFile, "/root/walkthrough/"+filepath.Base(debFile), 0o644)
	n.mustSh("ctr -n k8s.io images tag --force " + localImage + " docker.io/library/busybox:latest >/dev/null")
	starts := n.containerdStarts()

	for i, s := range steps {
		out, err := n.walk(s.script)
		t.Logf("README.md:%d:\n%s\n---\n%s", s.line, s.script, out)
		if err != nil {
			t.Fatalf("step %d (README.md:%d) failed: %v\n%s", i+1, s.line, err, out)
		}
		if missing := matchLines(out, s.want); missing != "" {
			t.Fatalf("step %d (README.md:%d): the output lacks %q (in order):\n%s", i+1, s.line, missing, out)
		}
	}
	// The whole walkthrough restarted containerd once: for the policy.
	if got := n.containerdStarts() - starts; got != 1 {
		t.Errorf("containerd started %d times during the walkthrough, want 1", got)
	}
}

// walk runs a walkthrough block in the node, in /root/walkthrough, with
// sh -e: a failing command fails the step.
func (n *node) walk(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(n.pid1), "-a", "/bin/sh", "-ec", "cd /root/walkthrough\n"+script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// walkthrough reads the blocks marked <!-- walkthrough:KIND --> or
// <!-- walkthrough:KIND:WHERE --> from a Markdown file, with the output
// block that follows each, if marked <!-- walkthrough:output -->.
func walkthrough(path, kind string) ([]walkStep, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	var steps []walkStep
	ours := false // whether the last step marker seen was of kind
	for i := 0; i < len(lines); i++ {
		marker := strings.TrimSpace(lines[i])
		name, isMarker := strings.CutPrefix(marker, "<!-- walkthrough:")
		name, _ = strings.CutSuffix(name, " -->")
		where, ofKind := strings.CutPrefix(name, kind+":")
		if name == kind {
			where, ofKind = "", true
		}
		isOutput := marker == "<!-- walkthrough:output -->"
		if isMarker && !isOutput {
			ours = ofKind
		}
		if !ofKind && !(isOutput && ours) {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			return nil, fmt.Errorf("%s:%d: %s is not followed by a fenced block", path, i+1, marker)
		}
		body, end := fenced(lines, i+1)
		if end < 0 {
			return nil, fmt.Errorf("%s:%d: unterminated block", path, i+2)
		}
		switch {
		case marker == "<!-- walkthrough:output -->" && len(steps) == 0:
			return nil, fmt.Errorf("%s:%d: an output block before any step", path, i+1)
		case marker == "<!-- walkthrough:output -->":
			steps[len(steps)-1].want = body
		default:
			if lines[i+1] != "```sh" {
				return nil, fmt.Errorf("%s:%d: a step's block must be ```sh", path, i+2)
			}
			steps = append(steps, walkStep{line: i + 3, script: strings.Join(body, "\n"), where: where})
		}
		i = end
	}
	return steps, nil
}

// fenced returns the lines of the fenced block opening at lines[open] and
// the index of its closing fence (-1 if none).
func fenced(lines []string, open int) ([]string, int) {
	for j := open + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) == "```" {
			return lines[open+1 : j], j
		}
	}
	return nil, -1
}

var spaces = regexp.MustCompile(`\s+`)

// matchLines checks that out has, in order, a line matching each wanted
// line: runs of white space are equal, and "..." stands for anything. It
// returns the first wanted line that is missing ("" if none is).
func matchLines(out string, want []string) string {
	got := strings.Split(out, "\n")
	at := 0
	for _, w := range want {
		w = strings.TrimSpace(spaces.ReplaceAllString(w, " "))
		if w == "" {
			continue
		}
		parts := strings.Split(w, "...")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
		found := false
		for ; at < len(got); at++ {
			if re.MatchString(strings.TrimSpace(spaces.ReplaceAllString(got[at], " "))) {
				found, at = true, at+1
				break
			}
		}
		if !found {
			return w
		}
	}
	return ""
}
