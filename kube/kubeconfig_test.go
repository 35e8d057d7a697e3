package kube

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLoadKubeconfig(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert, key := ca.client(t, "system:node:worker-1")
	userCert, userKey := ca.client(t, "alice")
	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", ca.pem)
	writeFile(t, dir, "kubelet-client-current.pem", append(append([]byte{}, cert...), key...))
	writeFile(t, dir, "token", []byte("s3cret\n"))
	caData := "    certificate-authority-data: " + b64(ca.pem)

	tests := []struct {
		name, cluster, user string
		wantErr             string
		check               func(t *testing.T, c *Config)
	}{
		{name: "kubelet, embedded", cluster: caData,
			user: "    client-certificate-data: " + b64(cert) + "\n    client-key-data: " + b64(key),
			check: func(t *testing.T, c *Config) {
				if n, err := c.NodeName(); err != nil || n != "worker-1" {
					t.Errorf("NodeName() = %q, %v; want worker-1", n, err)
				}
				if c.Namespace != "ns1" || string(c.CA) != string(ca.pem) {
					t.Errorf("namespace %q, CA %d bytes", c.Namespace, len(c.CA))
				}
			}},
		{name: "kubelet, files relative to the kubeconfig", cluster: "    certificate-authority: ca.crt",
			user: "    client-certificate: kubelet-client-current.pem\n    client-key: kubelet-client-current.pem",
			check: func(t *testing.T, c *Config) {
				if !strings.HasPrefix(c.CertFile, dir) || string(c.CA) != string(ca.pem) {
					t.Errorf("cert file %q, CA %d bytes", c.CertFile, len(c.CA))
				}
				if n, err := c.NodeName(); err != nil || n != "worker-1" {
					t.Errorf("NodeName() = %q, %v", n, err)
				}
			}},
		{name: "token", cluster: caData, user: "    token: abc",
			check: func(t *testing.T, c *Config) {
				if c.Token != "abc" {
					t.Errorf("token %q", c.Token)
				}
				if _, err := c.NodeName(); err == nil {
					t.Error("NodeName of a token credential: no error")
				}
			}},
		{name: "token file", cluster: caData, user: "    tokenFile: token",
			check: func(t *testing.T, c *Config) {
				if !strings.HasSuffix(c.TokenFile, "/token") {
					t.Errorf("token file %q", c.TokenFile)
				}
			}},
		{name: "a user's certificate is no node", cluster: caData,
			user: "    client-certificate-data: " + b64(userCert) + "\n    client-key-data: " + b64(userKey),
			check: func(t *testing.T, c *Config) {
				if _, err := c.NodeName(); err == nil || !strings.Contains(err.Error(), `"alice"`) {
					t.Errorf("NodeName: %v", err)
				}
			}},
		{name: "exec plugin", cluster: caData, user: "    exec: {command: aws}", wantErr: "credential plugins"},
		{name: "insecure", cluster: "    insecure-skip-tls-verify: true", user: "    token: abc", wantErr: "insecure-skip-tls-verify"},
		{name: "no credential", cluster: caData, user: "    {}", wantErr: "no client certificate and no token"},
		{name: "key that doesn't match", cluster: caData,
			user: "    client-certificate-data: " + b64(cert) + "\n    client-key-data: " + b64(userKey), wantErr: "client certificate and key"},
		{name: "missing CA file", cluster: "    certificate-authority: nope.crt", user: "    token: abc", wantErr: "certificate-authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".conf", []byte(kubeconfigYAML("https://127.0.0.1:6443", tc.cluster, tc.user)))
			c, err := LoadKubeconfig(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestClientTLS: the client trusts only the kubeconfig's CA, presents the
// client certificate from its files, and rereads them for a new connection.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	srvCert, srvKey := ca.client(t, "apiserver", "127.0.0.1")
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			seen = append(seen, r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		w.Write([]byte(`{"metadata":{"labels":{}}}`))
	}))
	pair, err := tlsPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = pair
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	cert, key := ca.client(t, "system:node:a")
	writeFile(t, dir, "client.pem", append(append([]byte{}, cert...), key...))
	conf := kubeconfigYAML(srv.URL, "    certificate-authority-data: "+b64(ca.pem), "    client-certificate: client.pem\n    client-key: client.pem")
	cfg, err := LoadKubeconfig(writeFile(t, dir, "kubelet.conf", []byte(conf)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), "/api/v1/nodes/a", &nodeMeta{}); err != nil {
		t.Fatal(err)
	}
	// The kubelet rotates its certificate: the next connection shows the
	// new one.
	cert2, key2 := ca.client(t, "system:node:a-rotated")
	writeFile(t, dir, "client.pem", append(append([]byte{}, cert2...), key2...))
	c.Close()
	if err := c.Get(context.Background(), "/api/v1/nodes/a", &nodeMeta{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "system:node:a,system:node:a-rotated" {
		t.Errorf("client certificates seen: %v", seen)
	}

	// A server whose certificate another CA signed is refused.
	other := httptest.NewUnstartedServer(http.NotFoundHandler())
	other.Config.ErrorLog = log.New(io.Discard, "", 0)
	other.StartTLS()
	defer other.Close()
	cfg.Server = other.URL
	c2, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c2.Get(context.Background(), "/", nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server of another CA: %v, want a certificate error", err)
	}
	// Not an outage: this node's configuration names another CA.
	if Unreachable(err) || !Misconfigured(err) {
		t.Errorf("a server the configured CA didn't sign: Unreachable = %v, Misconfigured = %v (%v), want false, true", Unreachable(err), Misconfigured(err), err)
	}
}

// TestNodeNameFromFleetCertificate: a fleet certificate of the node's own
// (runtimeclassd:node:NAME, as docs/FLEET.md recommends) names the node
// as a kubelet's does.
func TestNodeNameFromFleetCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	for cn, want := range map[string]string{"system:node:w1": "w1", "runtimeclassd:node:w2": "w2", "someone": ""} {
		cert, key := ca.client(t, cn)
		got, err := (&Config{Path: "k", CertData: cert, KeyData: key}).NodeName()
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", cn, got, err, want)
		}
	}
}
