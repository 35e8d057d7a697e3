package kube

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// certServer is an HTTP/2 TLS server that records, per request, the
// client certificate's name and the connection, and answers 401 while
// refuse says so.
type certServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string // CN of each request
	conns  map[string]bool
	refuse func(cn, conn string) bool
	unauth atomic.Int32
}

func newCertServer(t *testing.T, ca *testCA) *certServer {
	t.Helper()
	s := &certServer{conns: map[string]bool{}}
	srvCert, srvKey := ca.client(t, "apiserver", "127.0.0.1")
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.seen = append(s.seen, cn)
		s.conns[r.RemoteAddr] = true
		refuse := s.refuse != nil && s.refuse(cn, r.RemoteAddr)
		s.mu.Unlock()
		if refuse {
			s.unauth.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"kind":"Status","reason":"Unauthorized","message":"certificate expired"}`))
			return
		}
		w.Write([]byte(`{"metadata":{"labels":{}}}`))
	}))
	pair, err := tlsPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	s.srv.TLS = pair
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *certServer) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// certClient is a client of s whose certificate comes from a file.
func certClient(t *testing.T, s *certServer, ca *testCA, cn string) (c *Client, rotate func(cn string)) {
	t.Helper()
	dir := t.TempDir()
	write := func(cn string) {
		cert, key := ca.client(t, cn)
		// A new file behind the same name, as the kubelet rotates.
		tmp := writeFile(t, dir, "new.pem", append(append([]byte{}, cert...), key...))
		if err := os.Rename(tmp, filepath.Join(dir, "client.pem")); err != nil {
			t.Fatal(err)
		}
	}
	write(cn)
	conf := kubeconfigYAML(s.srv.URL, "    certificate-authority-data: "+b64(ca.pem), "    client-certificate: client.pem\n    client-key: client.pem")
	cfg, err := LoadKubeconfig(writeFile(t, dir, "kubelet.conf", []byte(conf)))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, write
}

// TestClientCertificateRotation: the certificate files change while a
// connection stays open (the kubelet rotated its client certificate, and
// the old one is about to expire): the next request goes on a new
// connection with the new certificate, and the server never says 401 (it
// used to, on the old connection, until the daemon restarted). And a 401
// on a connection made with a certificate the server no longer takes is
// retried once on a new connection.
func TestClientCertificateRotation(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	s := newCertServer(t, ca)
	c, rotate := certClient(t, s, ca, "system:node:a")
	ctx := context.Background()
	if err := c.Get(ctx, "/api/v1/nodes/a", &nodeMeta{}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.refuse = func(cn, _ string) bool { return cn == "system:node:a" } // the old one has expired
	s.mu.Unlock()
	rotate("system:node:a-rotated")
	if err := c.Get(ctx, "/api/v1/nodes/a", &nodeMeta{}); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	if got := s.last(); got != "system:node:a-rotated" || s.unauth.Load() != 0 {
		t.Errorf("after the rotation: certificate %q, %d answers 401; want the new one and none", got, s.unauth.Load())
	}

	// The server stops taking the connection's certificate without the
	// files changing (revoked, or the clock passed its expiry): one 401,
	// then a new connection.
	ca2 := newTestCA(t)
	s2 := newCertServer(t, ca2)
	c2, _ := certClient(t, s2, ca2, "system:node:b")
	if err := c2.Get(ctx, "/api/v1/nodes/b", &nodeMeta{}); err != nil {
		t.Fatal(err)
	}
	s2.mu.Lock()
	first := ""
	for conn := range s2.conns {
		first = conn
	}
	s2.refuse = func(_, conn string) bool { return conn == first }
	s2.mu.Unlock()
	if err := c2.Get(ctx, "/api/v1/nodes/b", &nodeMeta{}); err != nil {
		t.Fatalf("a 401 on an old connection was not retried on a new one: %v", err)
	}
	if n := s2.unauth.Load(); n != 1 {
		t.Errorf("%d answers 401, want 1 (then a new connection)", n)
	}
}

// blackhole forwards TCP connections to to, until cut: from then on the
// connections it holds pass nothing either way and are not closed (a NAT
// that forgot them), and new ones are forwarded again. closed receives
// each held connection the client closes.
type blackhole struct {
	l      net.Listener
	to     string
	cut    atomic.Bool
	closed chan struct{}
}

func newBlackhole(t *testing.T, to string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l, to: to, closed: make(chan struct{}, 10)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go b.forward(in)
		}
	}()
	return b
}

func (b *blackhole) forward(in net.Conn) {
	out, err := net.Dial("tcp", b.to)
	if err != nil {
		in.Close()
		return
	}
	pipe := func(dst, src net.Conn, fromClient bool) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				if fromClient && b.cut.Load() {
					b.closed <- struct{}{}
				}
				dst.Close()
				src.Close()
				return
			}
			if b.cut.Load() {
				continue // swallowed
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go pipe(out, in, true)
	pipe(in, out, false)
}

// TestClientHTTP2HealthCheck: a connection that goes silently dead is
// pinged once it has been idle for the read-idle interval and closed when
// the ping goes unanswered, so the next request gets a new connection
// instead of waiting on a dead one for minutes (the intervals here are
// cut down from client-go's 30 s and 15 s).
func TestClientHTTP2HealthCheck(t *testing.T) {
	ca := newTestCA(t)
	s := newCertServer(t, ca)
	hole := newBlackhole(t, s.srv.Listener.Addr().String())
	defer func(r, p time.Duration) { http2ReadIdle, http2PingTimeout = r, p }(http2ReadIdle, http2PingTimeout)
	http2ReadIdle, http2PingTimeout = 200*time.Millisecond, 200*time.Millisecond
	cert, key := ca.client(t, "system:node:c")
	dir := t.TempDir()
	writeFile(t, dir, "client.pem", append(append([]byte{}, cert...), key...))
	conf := kubeconfigYAML("https://"+hole.l.Addr().String(), "    certificate-authority-data: "+b64(ca.pem), "    client-certificate: client.pem\n    client-key: client.pem")
	cfg, err := LoadKubeconfig(writeFile(t, dir, "kubelet.conf", []byte(conf)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Get(ctx, "/api/v1/nodes/c", &nodeMeta{}); err != nil {
		t.Fatal(err)
	}
	hole.cut.Store(true)
	select {
	case <-hole.closed:
	case <-time.After(waitBoundKube):
		t.Fatalf("the dead connection was not closed within %v: no health check", waitBoundKube)
	}
	hole.cut.Store(false)
	if err := c.Get(ctx, "/api/v1/nodes/c", &nodeMeta{}); err != nil {
		t.Fatalf("after the dead connection: %v", err)
	}
}

// waitBoundKube bounds waits for an event in this package's tests: long,
// so that only a missing event fails them.
const waitBoundKube = 60 * time.Second
