package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is the part of the Kubernetes API this package uses, with the
// API server's concurrency rules: a create of an existing object is 409
// AlreadyExists, a replace at an old resourceVersion is 409 Conflict.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	rv       int
	leases   map[string]*lease // namespace/name
	cms      map[string]*configMap
	nodes    map[string]map[string]string // node name -> labels
	requests []string                     // "METHOD path"
	// fail, if set, answers a request with that status instead (0: serve
	// it). It runs without the lock held.
	fail func(r *http.Request) int
	// retryAfter, if set, is the Retry-After header of failed answers.
	retryAfter string
	// beforeWrite, if set, runs (with the lock held) before a lease or
	// ConfigMap write is served: a test makes another writer win there.
	beforeWrite func(f *fakeAPI, method, key string)
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, leases: map[string]*lease{}, cms: map[string]*configMap{}, nodes: map[string]map[string]string{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client of the fake, trusting its certificate, with a
// bearer token.
func (f *fakeAPI) client(t *testing.T) *Client {
	t.Helper()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	c, err := NewClient(&Config{Path: "test", Server: f.srv.URL, CA: caPEM, Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f *fakeAPI) nextRV() string {
	f.rv++
	return strconv.Itoa(f.rv)
}

func (f *fakeAPI) status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": msg})
}

func (f *fakeAPI) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) count(method, prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, method+" "+prefix) {
			n++
		}
	}
	return n
}

func (f *fakeAPI) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer t0ken" {
		f.status(w, http.StatusUnauthorized, "Unauthorized", "no token")
		return
	}
	if f.fail != nil {
		if code := f.fail(r); code != 0 {
			f.mu.Lock()
			f.requests = append(f.requests, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			f.status(w, code, "InternalError", "injected")
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == "api" && parts[2] == "nodes":
		f.serveNode(w, r, parts[3], body)
	case len(parts) >= 6 && parts[1] == "coordination.k8s.io" && parts[5] == "leases":
		name := ""
		if len(parts) == 7 {
			name = parts[6]
		}
		f.serveLease(w, r, parts[4], name, body)
	case len(parts) == 6 && parts[0] == "api" && parts[4] == "configmaps":
		f.serveConfigMap(w, r, parts[3]+"/"+parts[5], body)
	default:
		f.status(w, http.StatusNotFound, "NotFound", "no route "+r.URL.Path)
	}
}

func (f *fakeAPI) serveNode(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	labels, ok := f.nodes[name]
	if !ok {
		f.status(w, http.StatusNotFound, "NotFound", "nodes "+name+" not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		if r.Header.Get("Content-Type") != "application/merge-patch+json" {
			f.status(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", r.Header.Get("Content-Type"))
			return
		}
		var p struct {
			Metadata struct {
				Labels map[string]*string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			f.status(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		for k, v := range p.Metadata.Labels {
			if v == nil {
				delete(labels, k)
			} else {
				labels[k] = *v
			}
		}
	default:
		f.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
		return
	}
	f.reply(w, http.StatusOK, map[string]any{"kind": "Node", "metadata": map[string]any{"name": name, "labels": labels}})
}

// matches is a label selector of "key", "key=value" terms.
func matches(selector string, labels map[string]string) bool {
	for _, term := range strings.Split(selector, ",") {
		if term == "" {
			continue
		}
		k, v, eq := strings.Cut(term, "=")
		got, ok := labels[k]
		if !ok || eq && got != v {
			return false
		}
	}
	return true
}

func clone[T any](v *T) *T {
	b, _ := json.Marshal(v)
	out := new(T)
	json.Unmarshal(b, out)
	return out
}

func (f *fakeAPI) serveLease(w http.ResponseWriter, r *http.Request, ns, name string, body []byte) {
	key := ns + "/" + name
	switch {
	case r.Method == http.MethodGet && name == "":
		var keys []string
		for k := range f.leases {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		list := leaseList{}
		list.Metadata.ResourceVersion = strconv.Itoa(f.rv)
		for _, k := range keys {
			if strings.HasPrefix(k, ns+"/") && matches(r.URL.Query().Get("labelSelector"), f.leases[k].Metadata.Labels) {
				list.Items = append(list.Items, *clone(f.leases[k]))
			}
		}
		f.reply(w, http.StatusOK, list)
	case r.Method == http.MethodGet:
		l, ok := f.leases[key]
		if !ok {
			f.status(w, http.StatusNotFound, "NotFound", "leases "+name+" not found")
			return
		}
		f.reply(w, http.StatusOK, l)
	case r.Method == http.MethodPost:
		var l lease
		json.Unmarshal(body, &l)
		key = ns + "/" + l.Metadata.Name
		if f.beforeWrite != nil {
			f.beforeWrite(f, r.Method, key)
		}
		if _, ok := f.leases[key]; ok {
			f.status(w, http.StatusConflict, "AlreadyExists", "leases "+l.Metadata.Name+" already exists")
			return
		}
		l.Metadata.Namespace, l.Metadata.ResourceVersion = ns, f.nextRV()
		f.leases[key] = &l
		f.reply(w, http.StatusCreated, l)
	case r.Method == http.MethodPut:
		var l lease
		json.Unmarshal(body, &l)
		if f.beforeWrite != nil {
			f.beforeWrite(f, r.Method, key)
		}
		cur, ok := f.leases[key]
		switch {
		case !ok:
			f.status(w, http.StatusNotFound, "NotFound", "leases "+name+" not found")
		case l.Metadata.ResourceVersion != cur.Metadata.ResourceVersion:
			f.status(w, http.StatusConflict, "Conflict", "the object has been modified")
		default:
			l.Metadata.Namespace, l.Metadata.ResourceVersion = ns, f.nextRV()
			f.leases[key] = &l
			f.reply(w, http.StatusOK, l)
		}
	default:
		f.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

func (f *fakeAPI) serveConfigMap(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	cur, ok := f.cms[key]
	switch r.Method {
	case http.MethodGet:
		if !ok {
			f.status(w, http.StatusNotFound, "NotFound", "configmaps not found")
			return
		}
		f.reply(w, http.StatusOK, cur)
	case http.MethodPut:
		if f.beforeWrite != nil {
			f.beforeWrite(f, r.Method, key)
			cur, ok = f.cms[key]
		}
		var cm configMap
		json.Unmarshal(body, &cm)
		switch {
		case !ok:
			f.status(w, http.StatusNotFound, "NotFound", "configmaps not found")
		case cm.Metadata.ResourceVersion != cur.Metadata.ResourceVersion:
			f.status(w, http.StatusConflict, "Conflict", "the object has been modified")
		default:
			cm.Metadata.ResourceVersion = f.nextRV()
			f.cms[key] = &cm
			f.reply(w, http.StatusOK, cm)
		}
	default:
		f.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// lease returns a copy of a stored Lease, nil if there is none.
func (f *fakeAPI) lease(ns, name string) *lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.leases[ns+"/"+name]; ok {
		return clone(l)
	}
	return nil
}

// holders lists the holders of the slot Leases in ns.
func (f *fakeAPI) holders(ns string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, l := range f.leases {
		if strings.HasPrefix(k, ns+"/"+slotPrefix) && l.holder() != "" {
			out = append(out, l.holder())
		}
	}
	sort.Strings(out)
	return out
}

// fakeClock moves only when the test advances it. After registers a
// waiter; tests wait until the code under test is parked on the clock
// (waitWaiters) before they advance it, so nothing depends on timing.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	seq     int // After calls so far
	changed chan struct{}
}

type fakeWaiter struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), d: d, ch: ch})
	c.seq++
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock and fires every waiter that is due. It returns
// how many it fired.
func (c *fakeClock) Advance(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	fired := 0
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			fired++
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	return fired
}

// forget drops the waiters of duration d: timers of a goroutine that the
// test stopped, which will never park again.
func (c *fakeClock) forget(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiters = slices.DeleteFunc(c.waiters, func(w fakeWaiter) bool { return w.d == d })
}

// tick advances the clock by d, then waits until every goroutine it woke
// is parked on the clock again, or done() is true (one of them finished).
func (c *fakeClock) tick(t *testing.T, d time.Duration, done func() bool) {
	t.Helper()
	c.mu.Lock()
	s := c.seq
	c.mu.Unlock()
	fired := c.Advance(d)
	deadline := time.After(20 * time.Second)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		c.mu.Lock()
		parked := c.seq >= s+fired
		ch := c.changed
		c.mu.Unlock()
		if parked || done != nil && done() {
			return
		}
		select {
		case <-ch:
		case <-poll.C:
		case <-deadline:
			t.Fatalf("fake clock: the %d goroutines woken did not park again", fired)
		}
	}
}

// waitWaiters waits (in real time, generously bounded) until at least n
// waiters are parked, and returns their durations.
func (c *fakeClock) waitWaiters(t *testing.T, n int) []time.Duration {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.waiters) >= n {
			var ds []time.Duration
			for _, w := range c.waiters {
				ds = append(ds, w.d)
			}
			c.mu.Unlock()
			return ds
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fake clock: %d waiters parked, want %d", len(c.waiters), n)
		}
	}
}

// skewed is a node's clock that reads offset from the shared fake clock.
type skewed struct {
	*fakeClock
	offset time.Duration
}

func (s skewed) Now() time.Time { return s.fakeClock.Now().Add(s.offset) }

// testCA signs client certificates for kubeconfig tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate for cn and returns it and its key,
// in PEM.
func (ca *testCA) client(t *testing.T, cn string, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func kubeconfigYAML(server, cluster, user string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u, namespace: ns1}
clusters:
- name: k
  cluster:
    server: %s
%s
users:
- name: u
  user:
%s
`, server, cluster, user)
}

func tlsPair(certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert}, nil
}
