// Package kube is runtimeclassd's only door to the Kubernetes API: its own
// Node's runtimeclassd.io/handler.* labels, the fleet's restart budget (K
// slot Leases) and the fleet's record of failed policies.
//
// It speaks the REST API with net/http and encoding/json, and links no
// Kubernetes client library: nothing in it runs at program start, so the
// one-shot commands that never talk to Kubernetes pay nothing for it.
//
// Every write is guarded: labels go in a JSON merge patch that names only
// our keys, and Leases and the failure record are replaced only at the
// resourceVersion that was read (optimistic concurrency), so two nodes
// never both believe they won the same slot.
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Client makes requests to one API server with one credential.
type Client struct {
	server    *url.URL
	http      *http.Client
	token     string
	tokenFile string
	userAgent string
	requests  atomic.Int64
	// certFiles are the client certificate's and key's files, if they are
	// files; certSeen is what they were at the last look (see rotated).
	certFiles []string
	certMu    sync.Mutex
	certSeen  string
	hasCert   bool
}

// HTTP/2 health checks, as client-go's: a connection that has read
// nothing for http2ReadIdle is pinged, and closed if the ping isn't
// answered within http2PingTimeout, so that a silently dead connection
// (a NAT or a load balancer that dropped it) is not reused for minutes.
var (
	http2ReadIdle    = 30 * time.Second
	http2PingTimeout = 15 * time.Second
)

// NewClient returns a client for the cluster and user a kubeconfig names.
func NewClient(cfg *Config) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubeconfig %s: server %q is not an https URL", cfg.Path, cfg.Server)
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: http2ReadIdle, PingTimeout: http2PingTimeout},
	}
	c := &Client{
		server:    u,
		http:      &http.Client{Transport: tr, Timeout: 30 * time.Second},
		token:     cfg.Token,
		tokenFile: cfg.TokenFile,
		userAgent: "runtimeclassd",
		hasCert:   cfg.hasClientCert(),
	}
	for _, f := range []string{cfg.CertFile, cfg.KeyFile} {
		if f != "" {
			c.certFiles = append(c.certFiles, f)
		}
	}
	c.certSeen = c.certStamp()
	return c, nil
}

// certStamp says what the client certificate's files are now: their
// inode, size and modification time (a rotated kubelet-client-current.pem
// is a symlink to a new file).
func (c *Client) certStamp() string {
	var b strings.Builder
	for _, f := range c.certFiles {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s: missing;", f)
			continue
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&b, "%s: %d %d %d;", f, ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// rotated reports whether the client certificate's files changed since
// the last look. Connections made before keep the old certificate, which
// is read only at a TLS handshake: the caller closes them.
func (c *Client) rotated() bool {
	if len(c.certFiles) == 0 {
		return false
	}
	now := c.certStamp()
	c.certMu.Lock()
	defer c.certMu.Unlock()
	if now == c.certSeen {
		return false
	}
	c.certSeen = now
	return true
}

// Requests is how many requests the client has sent: the figure behind
// "a handful, not a poll loop".
func (c *Client) Requests() int64 { return c.requests.Load() }

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// APIError is an answer of the API server other than success.
type APIError struct {
	Method, Path string
	Code         int
	Reason       string // the Status object's reason (NotFound, Conflict, AlreadyExists...)
	Message      string
	// RetryAfter is the answer's Retry-After, in seconds as sent (429 from
	// API Priority and Fairness, 503): how long the server asks to wait.
	RetryAfter time.Duration
}

// RetryAfter returns the Retry-After of an *APIError in err's chain, or 0.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, msg)
}

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// Unreachable reports whether err means the API server could not be asked
// or could not answer: a network error, a timeout, a 5xx or a 429. Any
// other error is an answer (not found, conflict, forbidden...).
func Unreachable(err error) bool {
	if err == nil || Misconfigured(err) {
		return false
	}
	code := StatusCode(err)
	if code == 0 {
		return !errors.Is(err, context.Canceled)
	}
	return code == http.StatusTooManyRequests || code >= 500
}

// ConfigError is an error of this node's own API configuration, found
// before or while a request is made: a token or certificate file that
// can't be read, a server whose certificate the configured CA doesn't
// sign, a client certificate the server refuses. It is not the API server
// being unreachable: waiting for the network won't fix it, and
// on_api_unreachable = "proceed" must not restart every node with that
// configuration without a slot.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "this node's API configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Misconfigured reports whether err is a ConfigError, or a TLS failure
// that says the configuration is wrong rather than the network: the
// server's certificate not verified by the configured CA (or not for
// that host), or the server refusing this node's certificate.
func Misconfigured(err error) bool {
	var ce *ConfigError
	var verr *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ce) || errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 42, 43, 44, 45, 46, 48: // bad, unsupported, revoked, expired, unknown certificate; unknown CA
			return true
		}
	}
	return false
}

// do sends one request. in, if not nil, is sent as JSON with contentType;
// a 2xx answer is decoded into out when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, in, out any) error {
	if c.rotated() {
		// New certificate files: new connections, which read them.
		c.http.CloseIdleConnections()
	}
	err := c.do1(ctx, method, path, query, contentType, in, out)
	if StatusCode(err) == http.StatusUnauthorized && c.hasCert {
		// A certificate that expired or was replaced on a connection made
		// before: reconnect once, with what the files hold now.
		c.http.CloseIdleConnections()
		err = c.do1(ctx, method, path, query, contentType, in, out)
	}
	return err
}

func (c *Client) do1(ctx context.Context, method, path string, query url.Values, contentType string, in, out any) error {
	u := *c.server
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	token := c.token
	if c.tokenFile != "" {
		// Re-read at each request: projected and rotated tokens change.
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return &ConfigError{fmt.Errorf("reading the token file: %w", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Method: method, Path: path, Code: resp.StatusCode}
		if n, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && n > 0 {
			ae.RetryAfter = min(time.Duration(n)*time.Second, 10*time.Minute)
		}
		var st struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &st) == nil {
			ae.Reason, ae.Message = st.Reason, st.Message
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// Get fetches an API path into out (JSON): for callers that read what this
// package has no type for, such as a Node's status.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", nil, out)
}

// tlsConfigFor builds the client side of TLS: the cluster's CA (or the
// system's roots) and, for a client certificate, a loader that rereads the
// files when a new connection is made, so a rotated kubelet certificate
// (kubelet-client-current.pem) is picked up.
func (cfg *Config) tlsConfig() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ServerName != "" {
		t.ServerName = cfg.ServerName
	}
	if len(cfg.CA) > 0 {
		pool, err := certPool(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: certificate authority: %w", cfg.Path, err)
		}
		t.RootCAs = pool
	}
	if cfg.hasClientCert() {
		if _, err := cfg.clientCert(); err != nil {
			return nil, err
		}
		t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := cfg.clientCert()
			if err != nil {
				return nil, &ConfigError{err}
			}
			return c, nil
		}
	}
	return t, nil
}
