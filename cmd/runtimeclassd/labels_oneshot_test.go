package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// nodeAPI serves one Node's GET and merge PATCH of labels over TLS: the
// part of the API server a one-shot command uses.
type nodeAPI struct {
	mu       sync.Mutex
	labels   map[string]string
	requests []string
}

func (a *nodeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, r.Method+" "+r.URL.Path)
	if r.URL.Path != "/api/v1/nodes/w1" || r.Header.Get("Authorization") != "Bearer t0ken" {
		http.Error(w, "{}", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodPatch {
		var p struct {
			Metadata struct {
				Labels map[string]*string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, "{}", http.StatusBadRequest)
			return
		}
		for k, v := range p.Metadata.Labels {
			if v == nil {
				delete(a.labels, k)
			} else {
				a.labels[k] = *v
			}
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": "w1", "labels": a.labels}})
}

// TestRevertSetsNodeLabelsFalse: a one-shot revert (what a purge runs, with
// the daemon stopped) turns the Node's handler labels false, so the Node
// doesn't go on claiming handlers containerd no longer has; apply (the
// boot unit's, here) sends no request: the labels are the daemon's.
func TestRevertSetsNodeLabelsFalse(t *testing.T) {
	t.Parallel()
	api := &nodeAPI{labels: map[string]string{"kubernetes.io/hostname": "w1", "runtimeclassd.io/handler.kata": "true"}}
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	n := newNode(t, 1, readCorpus(t, "v2-default-1.6.toml"))
	kubeconfig := filepath.Join(n.dir, "kubelet.conf")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {token: t0ken}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, srv.URL, base64.StdEncoding.EncodeToString(ca)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(n.dir, "runtimeclassd.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "node_kubeconfig = %q\nnode_name = \"w1\"\n", kubeconfig), 0o644); err != nil {
		t.Fatal(err)
	}
	n.policyFile("10-kata.toml", kataPolicy)
	if code := n.run("--config", cfg, "apply", "--no-restart"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
	}
	api.mu.Lock()
	if len(api.requests) != 0 {
		t.Errorf("apply sent %v; want nothing", api.requests)
	}
	api.mu.Unlock()

	if code := n.run("--config", cfg, "revert", "--no-restart"); code != 0 {
		t.Fatalf("revert: exit %d\n%s", code, &n.stderr)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	want := map[string]string{"kubernetes.io/hostname": "w1", "runtimeclassd.io/handler.kata": "false"}
	if !maps.Equal(api.labels, want) {
		t.Errorf("labels after revert: %v, want %v (requests %v)\n%s", api.labels, want, api.requests, &n.stderr)
	}
	if got := strings.Join(api.requests, ", "); got != "GET /api/v1/nodes/w1, PATCH /api/v1/nodes/w1" {
		t.Errorf("requests: %s; want a GET and a PATCH", got)
	}
}
