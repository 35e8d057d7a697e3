//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterStory is the procedure this project automates, ending as it
// ends: on a real control plane, the node trusted runs ordinary pods, the
// node untrusted (tainted, running runtimeclassd with the kubelet's
// credential) offers crun, and pods that ask for crun are scheduled there
// by the RuntimeClass alone and run under crun. It runs the README's
// cluster walkthrough as written (blocks marked walkthrough:cluster:admin
// run here with kubectl, walkthrough:cluster:untrusted in the node), then
// checks what the outputs can't show and reports the figures.
func TestClusterStory(t *testing.T) {
	t.Parallel()
	steps, err := walkthrough(filepath.Join(repoDir, "README.md"), "cluster")
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 8 {
		t.Fatalf("README.md has %d walkthrough:cluster blocks; the cluster walkthrough has lost its markers", len(steps))
	}
	before := hostSysctls()
	t.Cleanup(func() {
		// Runs last, after the nodes are gone: kubelet never wrote this
		// machine's /proc/sys.
		for k, v := range hostSysctls() {
			if before[k] != v {
				t.Errorf("this machine's %s changed from %s to %s", k, before[k], v)
			}
		}
	})
	c := startCluster(t)
	trusted, untrusted := c.addNode("trusted", kubeNodeOptions{}), c.addNode("untrusted", kubeNodeOptions{})
	for _, n := range []*kubeNode{trusted, untrusted} {
		// What the README takes for granted: an image named busybox on
		// every node (no registry here), and the package on untrusted.
		n.mustSh("ctr -n k8s.io images tag --force " + localImage + " docker.io/library/busybox:latest >/dev/null")
		c.waitNodeReady(n.name, 3*time.Minute)
		t.Logf("node %s Ready %v after its boot began", n.name, time.Since(n.booted).Round(10*time.Millisecond))
	}
	untrusted.copyFile(debFile, "/root/walkthrough/"+filepath.Base(debFile), 0o644)
	bin, err := filepath.Abs(binary)
	if err != nil {
		t.Fatal(err)
	}
	adminDir := t.TempDir()
	admin := func(script string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-ec", script)
		cmd.Dir = adminDir
		cmd.Env = []string{"PATH=" + kubeBins + ":" + filepath.Dir(bin) + ":/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + adminDir, "LANG=C.UTF-8", "KUBECONFIG=" + c.admin}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	var policyAt time.Time
	startsBefore, startsRunning := -1, -1
	for i, s := range steps {
		var out string
		var err error
		switch s.where {
		case "admin":
			out, err = admin(s.script)
		case "untrusted":
			if strings.Contains(s.script, "> /etc/runtimeclassd/policy.d/30-crun.toml") {
				startsBefore, policyAt = untrusted.containerdStarts(), time.Now()
			}
			out, err = untrusted.walk(s.script)
		default:
			t.Fatalf("README.md:%d: a cluster step runs on %q; want admin or untrusted", s.line, s.where)
		}
		t.Logf("README.md:%d (%s):\n%s\n---\n%s", s.line, s.where, s.script, out)
		if err != nil {
			t.Fatalf("step %d (README.md:%d) failed: %v\n%s", i+1, s.line, err, out)
		}
		if missing := matchLines(out, s.want); missing != "" {
			t.Fatalf("step %d (README.md:%d): the output lacks %q (in order):\n%s", i+1, s.line, missing, out)
		}
		if strings.Contains(s.script, "rollout status deployment/untrusted") {
			startsRunning = untrusted.containerdStarts()
		}
	}
	if startsBefore < 0 || startsRunning < 0 {
		t.Fatal("the walkthrough has no step that drops the crun policy on untrusted, or none that rolls out the untrusted Deployment")
	}

	// From the policy's drop-in to the untrusted pods running: one
	// containerd restart, for both handlers.
	if got := startsRunning - startsBefore; got != 1 {
		t.Errorf("containerd started %d times from the policy drop-in to the untrusted pods running; want 1", got)
	}
	pods := c.pods()
	var firstRunning time.Time
	for _, p := range pods {
		if p.Metadata.Labels["app"] != "untrusted" {
			continue
		}
		if len(p.Status.ContainerStatuses) == 1 {
			if at := p.Status.ContainerStatuses[0].State.Running.StartedAt; !at.IsZero() && (firstRunning.IsZero() || at.Before(firstRunning)) {
				firstRunning = at
			}
		}
	}
	if firstRunning.IsZero() {
		t.Fatal("no untrusted pod reports a running container")
	}

	// Where every pod went: the taint kept the pods without a class off
	// untrusted, the RuntimeClass sent the crun pods there.
	var crunPods []pod
	for _, p := range pods {
		switch {
		case p.Spec.NodeName == "untrusted" && p.Spec.RuntimeClassName != "crun":
			t.Errorf("pod %s (class %q) runs on untrusted", p.Metadata.Name, p.Spec.RuntimeClassName)
		case p.Metadata.Labels["app"] == "untrusted":
			if p.Spec.NodeName != "untrusted" || p.Status.Phase != "Running" {
				t.Errorf("pod %s: on %q, %s; want Running on untrusted", p.Metadata.Name, p.Spec.NodeName, p.Status.Phase)
			}
			crunPods = append(crunPods, p)
		}
	}
	// The running crun pods were left alone by the policy's removal and
	// the containerd restart that came with it: still crun's, running, and
	// never runc's.
	list := untrusted.mustSh("crun --root " + runcRoot + " list")
	for _, p := range crunPods {
		if len(p.Status.ContainerStatuses) != 1 {
			t.Fatalf("pod %s: %d container statuses", p.Metadata.Name, len(p.Status.ContainerStatuses))
		}
		cs := p.Status.ContainerStatuses[0]
		id := strings.TrimPrefix(cs.ContainerID, "containerd://")
		if cs.RestartCount != 0 || !slices.ContainsFunc(strings.Split(list, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) >= 3 && f[0] == id && f[2] == "running"
		}) {
			t.Errorf("pod %s: container %s (restarts %d) is not running under crun:\n%s", p.Metadata.Name, id, cs.RestartCount, list)
		}
		if out, err := untrusted.sh("runc --root " + runcRoot + " state " + id); err == nil {
			t.Errorf("runc knows %s, which crun created:\n%s", id, out)
		}
		// exec through the API server and the kubelet, into crun's container.
		if got, err := c.kubectl("exec", p.Metadata.Name, "--", "/bin/busybox", "hostname"); err != nil || strings.TrimSpace(got) != "untrusted" {
			t.Errorf("kubectl exec %s -- hostname: %q, %v; want untrusted", p.Metadata.Name, got, err)
		}
	}

	metrics := untrusted.metrics()
	requests, _ := strconv.ParseFloat(sample(metrics, `runtimeclassd_kube_api_requests_total{client="labels"}`), 64)
	// Read the Node once, patch it when the labels change (crun and broken
	// set, crun false): a handful, never a poll.
	if requests < 2 || requests > 8 {
		t.Errorf("runtimeclassd sent %v requests to the API server for the Node's labels; want 2 to 8", requests)
	}
	t.Logf("policy drop-in to the first untrusted pod running: %v (container start times have 1 s resolution); "+
		"containerd restarts in that time: %d; API requests by runtimeclassd, in all: %v; containerd starts on untrusted since the drop-in: %d",
		firstRunning.Sub(policyAt).Round(time.Second), startsRunning-startsBefore, requests, untrusted.containerdStarts()-startsBefore)
}

// pod is what TestClusterStory reads of a Pod.
type pod struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName         string `json:"nodeName"`
		RuntimeClassName string `json:"runtimeClassName"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		ContainerStatuses []struct {
			ContainerID  string `json:"containerID"`
			RestartCount int    `json:"restartCount"`
			State        struct {
				Running struct {
					StartedAt time.Time `json:"startedAt"`
				} `json:"running"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// pods lists the default namespace's pods.
func (c *cluster) pods() []pod {
	c.t.Helper()
	var list struct {
		Items []pod `json:"items"`
	}
	if err := c.get("/api/v1/namespaces/default/pods", &list); err != nil {
		c.t.Fatal(err)
	}
	return list.Items
}
