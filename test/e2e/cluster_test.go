//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The cluster: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as processes of the test, all on loopback, and nodes that
// are nspawn nodes each running a kubelet against its own containerd. The
// binaries come from scripts/kube-bins.sh.

var kubeBins = envOr("RUNTIMECLASSD_KUBE_BINS", filepath.Join(cache, "kube-v1.34.4"))

// kubeletKubeconfig is where a node's kubelet finds its credential (a
// system:node:NAME client certificate, embedded): the path runtimeclassd
// reads by default.
const kubeletKubeconfig = "/etc/kubernetes/kubelet.conf"

// cluster is a running control plane. Its helpers fail the test on error.
type cluster struct {
	t      *testing.T
	dir    string // certificates, kubeconfigs, logs and etcd's data
	hosts  string // the API server's /etc/hosts: every node's name is loopback
	ca     *authority
	server string       // the API server's URL
	admin  string       // an admin (system:masters) kubeconfig
	client *http.Client // authenticates as that admin
	procs  []*process
}

// process is a control-plane process of the test.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// stop ends the process group: SIGTERM, then SIGKILL if it lingers.
func (p *process) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// startCluster starts the control plane and waits until each part serves.
// Everything stops when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(kubeBins, b)); err != nil {
			t.Fatalf("missing %s: run scripts/kube-bins.sh (make e2e does)", filepath.Join(kubeBins, b))
		}
	}
	begin := time.Now()
	dir, err := os.MkdirTemp("/var/tmp", "runtimeclassd-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after every process has stopped.
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &cluster{t: t, dir: dir}
	t.Cleanup(c.dumpOnFailure)

	if c.ca, err = newAuthority(); err != nil {
		t.Fatal(err)
	}
	c.writeFile("ca.crt", c.ca.certPEM)
	apiPort := nextPort()
	c.server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.writePair("apiserver", c.issue("kube-apiserver", nil,
		"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.96.0.1"))
	c.writePair("apiserver-kubelet-client", c.issue("kube-apiserver-kubelet-client", []string{"system:masters"}))
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		t.Fatal(err)
	}
	c.writeFile("sa.key", saKey)
	c.writeFile("sa.pub", saPub)
	adminPair := c.issue("e2e-admin", []string{"system:masters"})
	c.admin = c.writeFile("admin.conf", []byte(kubeconfig(c.server, c.ca.certPEM, "e2e-admin", adminPair)))
	cert, err := tls.X509KeyPair(adminPair.cert, adminPair.key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.cert)
	c.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}},
	}}

	etcdPort, peerPort := nextPort(), nextPort()
	etcd := c.start("etcd", "--name=e2e", "--data-dir="+filepath.Join(dir, "etcd"), "--unsafe-no-fsync",
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-cluster=e2e=http://127.0.0.1:%d", peerPort))
	c.waitServing(etcd, fmt.Sprintf("http://127.0.0.1:%d/health", etcdPort), http.DefaultClient)

	// The API server reaches a kubelet (logs, exec) at its Node's Hostname
	// address, which this file resolves to loopback: kubelet refuses a
	// loopback node IP, and each kubelet listens on 127.0.0.1 only. The file
	// is the API server's own /etc/hosts (see start); addNode adds names.
	c.hosts = c.writeFile("hosts", []byte("127.0.0.1 localhost\n"))
	api := c.start("kube-apiserver",
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+c.path("apiserver.crt"), "--tls-private-key-file="+c.path("apiserver.key"),
		"--client-ca-file="+c.path("ca.crt"),
		"--kubelet-client-certificate="+c.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+c.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=Hostname",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.path("sa.pub"), "--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false")
	c.waitServing(api, c.server+"/readyz", c.client)
	t.Logf("kube-apiserver ready %v after start", time.Since(begin).Round(10*time.Millisecond))

	for _, comp := range []struct{ name, user string }{
		{"kube-controller-manager", "system:kube-controller-manager"},
		{"kube-scheduler", "system:kube-scheduler"},
	} {
		conf := c.writeFile(comp.name+".conf", []byte(kubeconfig(c.server, c.ca.certPEM, comp.user, c.issue(comp.user, nil))))
		port := nextPort()
		args := []string{"--kubeconfig=" + conf, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port), "--leader-elect=false",
			"--cert-dir=" + filepath.Join(dir, comp.name+"-certs")}
		if comp.name == "kube-controller-manager" {
			// Each controller acts as its own service account, as kubeadm
			// sets it up: the bootstrap RBAC roles are written for that.
			args = append(args, "--use-service-account-credentials=true",
				"--service-account-private-key-file="+c.path("sa.key"), "--root-ca-file="+c.path("ca.crt"))
		}
		p := c.start(comp.name, args...)
		insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // its self-signed serving certificate, on loopback
		}}
		c.waitServing(p, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), insecure)
	}
	// The controller manager's service-account controller makes this one.
	c.waitFor("the default service account", time.Minute, func() error {
		_, err := c.kubectl("get", "serviceaccount", "default")
		return err
	})
	t.Logf("control plane up in %v", time.Since(begin).Round(10*time.Millisecond))
	return c
}

func (c *cluster) path(name string) string { return filepath.Join(c.dir, name) }

func (c *cluster) writeFile(name string, data []byte) string {
	c.t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) writePair(name string, kp keyPair) {
	c.t.Helper()
	c.writeFile(name+".crt", kp.cert)
	c.writeFile(name+".key", kp.key)
}

func (c *cluster) issue(cn string, orgs []string, hosts ...string) keyPair {
	c.t.Helper()
	kp, err := c.ca.issue(cn, orgs, hosts...)
	if err != nil {
		c.t.Fatal(err)
	}
	return kp
}

// userKubeconfig writes a kubeconfig for a user with a client certificate
// of the cluster's CA (groups become its organizations), and returns its
// path: a credential other than the admin's or a kubelet's, for RBAC.
func (c *cluster) userKubeconfig(user string, groups ...string) string {
	c.t.Helper()
	return c.writeFile("user-"+user+".conf", []byte(kubeconfig(c.server, c.ca.certPEM, user, c.issue(user, groups))))
}

// start runs one of the cached binaries with its output in DIR/NAME.log.
// It is stopped when the test ends, and killed if the test binary dies.
func (c *cluster) start(name string, args ...string) *process {
	c.t.Helper()
	p := &process{name: name, log: c.path(name + ".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(kubeBins, name), args...)
	if name == "kube-apiserver" {
		// In a mount namespace of its own, with c.hosts as /etc/hosts.
		p.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation=private", "--",
			"/bin/sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, c.hosts, p.cmd.Path}, args...)...)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	c.t.Cleanup(p.stop)
	return p
}

// waitServing waits until url answers 200, or fails at once if p exits.
func (c *cluster) waitServing(p *process, url string, client *http.Client) {
	c.t.Helper()
	c.waitFor(p.name+" serving "+url, 90*time.Second, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// waitFor polls f until it returns nil. It fails the test at the timeout,
// or as soon as a control-plane process has exited.
func (c *cluster) waitFor(what string, timeout time.Duration, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		for _, p := range c.procs {
			if exit := p.exited(); exit != nil {
				c.t.Fatalf("waiting for %s: %v (log: %s)", what, exit, p.log)
			}
		}
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubectl runs the cached kubectl as the admin and returns its stdout.
func (c *cluster) kubectl(args ...string) (string, error) {
	return c.kubectlWith(c.admin, "", args...)
}

// kubectlWith runs the cached kubectl with a kubeconfig and a stdin.
func (c *cluster) kubectlWith(kubeconfig, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(kubeBins, "kubectl"), append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (c *cluster) mustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// apply is `kubectl apply -f -` of the given manifests.
func (c *cluster) apply(manifests string) {
	c.t.Helper()
	if _, err := c.kubectlWith(c.admin, manifests, "apply", "-f", "-"); err != nil {
		c.t.Fatal(err)
	}
}

// wait runs `kubectl wait`, which watches the objects: it returns as soon
// as the condition holds. On a timeout it fails the test with the objects'
// description and the cluster's events.
func (c *cluster) wait(timeout time.Duration, args ...string) {
	c.t.Helper()
	args = append([]string{"wait", fmt.Sprintf("--timeout=%ds", int(timeout.Seconds()))}, args...)
	if _, err := c.kubectl(args...); err != nil {
		events, _ := c.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp")
		c.t.Fatalf("%v\nevents:\n%s", err, events)
	}
}

// waitNodeReady waits for the node to register, then to be Ready.
func (c *cluster) waitNodeReady(name string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	c.wait(timeout, "--for=create", "node/"+name)
	c.wait(time.Until(deadline), "--for=condition=Ready", "node/"+name)
}

// addHost makes name resolve to loopback for the API server (kubectl logs
// and exec; the API server's nodes/proxy refuses loopback whatever the
// name). It appends in place: the API server's bind mount holds the inode.
// Go's resolver rereads the file when it changed, at most 5 s late.
func (c *cluster) addHost(name string) {
	c.t.Helper()
	f, err := os.OpenFile(c.hosts, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "127.0.0.1 %s\n", name); err != nil {
		c.t.Fatal(err)
	}
}

// waitPodPhase waits for a pod (in the default namespace) to reach phase.
func (c *cluster) waitPodPhase(name, phase string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	c.wait(timeout, "--for=create", "pod/"+name)
	c.wait(time.Until(deadline), "--for=jsonpath={.status.phase}="+phase, "pod/"+name)
}

// get fetches an API path as the admin and decodes the JSON into v: for
// tests that read the API without kubectl.
func (c *cluster) get(path string, v any) error {
	resp, err := c.client.Get(c.server + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// dumpOnFailure logs the end of each control-plane log if the test failed.
func (c *cluster) dumpOnFailure() {
	if !c.t.Failed() {
		return
	}
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		c.t.Logf("last lines of %s:\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// kubeNode is a cluster node: an nspawn node whose kubelet is registered
// as the Node of the same name, with the kubelet's credential at
// kubeletKubeconfig in the node.
type kubeNode struct {
	*node
	c           *cluster
	kubeletPort int
	booted      time.Time
}

// kubectlAsKubelet runs the cached kubectl with the node's kubelet
// credential, read from the node: what runtimeclassd in the node can do.
func (kn *kubeNode) kubectlAsKubelet(args ...string) (string, error) {
	conf := filepath.Join(kn.c.dir, kn.name+"-kubelet.conf")
	if err := os.WriteFile(conf, kn.readFile(kubeletKubeconfig), 0o600); err != nil {
		return "", err
	}
	return kn.c.kubectlWith(conf, "", args...)
}

// kubeNodeOptions says what a node runs besides containerd and a kubelet.
type kubeNodeOptions struct {
	major         int  // containerd's major version: 1 (Debian's 1.6, the default) or 2 (2.4.2)
	runtimeclassd bool // install the runtimeclassd package, started as bootNode starts it
}

// kubeletSysctls are the values kubelet wants for the kernel settings it
// checks (see setupKernelTunables in kubelet's container manager). Each
// node gets small files with these values bind-mounted over the entries,
// and kubelet runs with protectKernelDefaults, so it never writes
// /proc/sys: in an nspawn node that is this machine's /proc/sys.
var kubeletSysctls = []struct{ key, value string }{
	{"vm/overcommit_memory", "1"},
	{"vm/panic_on_oom", "0"},
	{"kernel/panic", "10"},
	{"kernel/panic_on_oops", "1"},
	{"kernel/keys/root_maxkeys", "1000000"},
	{"kernel/keys/root_maxbytes", "25000000"},
}

// addNode boots an nspawn node and starts its kubelet. It doesn't wait for
// the Node: see waitNodeReady.
func (c *cluster) addNode(name string, opts kubeNodeOptions) *kubeNode {
	c.t.Helper()
	if opts.major == 0 {
		opts.major = 1
	}
	kn := &kubeNode{c: c, kubeletPort: nextPort(), booted: time.Now()}
	healthzPort := nextPort()
	kubeletConf := kubeconfig(c.server, c.ca.certPEM, "system:node:"+name, c.issue("system:node:"+name, []string{"system:nodes"}))
	prepare := func(n *node) {
		n.copyFile(filepath.Join(kubeBins, "kubelet"), "/usr/bin/kubelet", 0o755)
		n.writeFile(kubeletKubeconfig, kubeletConf, 0o600)
		n.writeFile("/etc/kubernetes/pki/ca.crt", string(c.ca.certPEM), 0o644)
		n.writeFile("/var/lib/kubelet/config.yaml", kubeletConfig(kn.kubeletPort, healthzPort), 0o644)
		n.writeFile("/etc/systemd/system/kubelet.service", fmt.Sprintf(`[Unit]
Description=kubelet (runtimeclassd e2e)
After=containerd.service
Wants=containerd.service

[Service]
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=%s --hostname-override=%s --v=2
Restart=on-failure
RestartSec=2
`, kubeletKubeconfig, name), 0o644)
		// A network config makes containerd report NetworkReady, and so the
		// Node Ready. Pods here use the host's network; the plugin type
		// names no binary, so a pod that asks for a network of its own
		// fails instead of changing this machine's network.
		n.writeFile("/etc/cni/net.d/10-e2e.conflist",
			`{"cniVersion": "1.0.0", "name": "e2e", "plugins": [{"type": "e2e-host-network-only"}]}`+"\n", 0o644)
		// systemd-sysctl would apply the node's sysctl.d to this machine.
		if err := os.Symlink("/dev/null", filepath.Join(n.root, "etc/systemd/system/systemd-sysctl.service")); err != nil {
			c.t.Fatal(err)
		}
		for _, s := range kubeletSysctls {
			n.writeFile("/etc/kubernetes/e2e-sysctl/"+strings.ReplaceAll(s.key, "/", "."), s.value+"\n", 0o444)
		}
	}
	c.addHost(name)
	kn.node = bootNodeWith(c.t, name, opts.major, nodeOptions{noPackage: !opts.runtimeclassd, prepare: prepare})
	n := kn.node
	// Before destroy: the pods' processes ignore SIGTERM, and the node's
	// shutdown would wait for them until destroy's 20 s bound.
	c.t.Cleanup(func() {
		if c.t.Failed() {
			out, _ := n.sh("journalctl --no-pager -n 60 -u kubelet")
			c.t.Logf("kubelet journal of node %s:\n%s", name, out)
		}
		if out, err := n.sh("systemctl stop kubelet; ctr -n k8s.io tasks ls -q | xargs -r -n1 ctr -n k8s.io tasks kill -s SIGKILL"); err != nil {
			c.t.Logf("node %s: stopping kubelet and its pods: %v %s", name, err, out)
		}
	})

	// bootNodeWith made the node able to run pods (cgroups, the sandbox
	// image, restrict_oom_score_adj); kubelet needs its sysctls too.
	for _, s := range kubeletSysctls {
		file := "/etc/kubernetes/e2e-sysctl/" + strings.ReplaceAll(s.key, "/", ".")
		entry := "/proc/sys/" + s.key
		n.mustSh(fmt.Sprintf("mount --bind %s %s && mount -o remount,bind,ro %s", file, entry, entry))
		if got := n.mustSh("cat " + entry); got != s.value {
			c.t.Fatalf("node %s: %s reads %q through the bind mount, want %q", name, entry, got, s.value)
		}
	}
	if dump := n.mustSh("containerd config dump"); !regexp.MustCompile(`(?m)^\s*restrict_oom_score_adj = true$`).MatchString(dump) {
		c.t.Fatalf("node %s: containerd doesn't restrict oom_score_adj:\n%s", name, dump)
	}
	// kubelet's OOM watcher won't start without /dev/kmsg, which the node
	// lacks: an empty file gives it nothing to watch. Not a symlink to
	// /dev/null: a unit with ProtectKernelLogs= (runtimeclassd's) gets an
	// inaccessible node mounted over /dev/kmsg, through the symlink, and
	// so loses /dev/null.
	n.mustSh("test -e /dev/kmsg || touch /dev/kmsg")
	n.mustSh("systemctl start kubelet")
	return kn
}

// restrictOOMScoreAdj sets restrict_oom_score_adj in containerd's CRI
// config: this machine's bounding set lacks CAP_SYS_RESOURCE, so a sandbox
// can't lower its oom_score_adj. Debian's 1.6 config names the CRI table
// with few keys; 2.x's default config lists the key as false.
func restrictOOMScoreAdj(cfg string) (string, error) {
	if strings.Contains(cfg, "restrict_oom_score_adj = false") {
		return strings.Replace(cfg, "restrict_oom_score_adj = false", "restrict_oom_score_adj = true", 1), nil
	}
	const table = `[plugins."io.containerd.grpc.v1.cri"]`
	lines := strings.Split(cfg, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == table {
			indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
			lines = append(lines[:i+1], append([]string{indent + "  restrict_oom_score_adj = true"}, lines[i+1:]...)...)
			return strings.Join(lines, "\n"), nil
		}
	}
	return "", errors.New("containerd config: no CRI table to set restrict_oom_score_adj in")
}

// sandboxImage finds the pause image's name in `containerd config dump`:
// sandbox_image (1.x) or the pinned sandbox image (2.x).
func sandboxImage(dump string) string {
	m := regexp.MustCompile(`(?m)^\s*(?:sandbox_image|sandbox)\s*=\s*["']([^"']+)["']`).FindStringSubmatch(dump)
	if m == nil {
		return ""
	}
	return m[1]
}

// kubeletConfig is what kubelet needs on this machine: cgroup v1 with
// cgroupfs, no QoS cgroups or allocatable enforcement, no iptables, and
// errors instead of sysctl writes. Its ports are its own, because the
// nodes share this machine's network.
func kubeletConfig(port, healthzPort int) string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ` + strconv.Itoa(port) + `
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ` + strconv.Itoa(healthzPort) + `
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: true
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
`
}

// hostSysctls reads this machine's values of the kernel settings kubelet
// checks.
func hostSysctls() map[string]string {
	m := map[string]string{}
	for _, s := range kubeletSysctls {
		b, _ := os.ReadFile("/proc/sys/" + s.key)
		m[s.key] = strings.TrimSpace(string(b))
	}
	return m
}
