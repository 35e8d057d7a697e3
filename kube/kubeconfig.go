package kube

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v2"
)

// KubeletKubeconfig is where kubeadm and most installers put the kubelet's
// own kubeconfig: a system:node:NAME client certificate.
const KubeletKubeconfig = "/etc/kubernetes/kubelet.conf"

// Config is what this package needs of a kubeconfig: the current context's
// server, its CA, and one credential (a client certificate, files or
// embedded, or a bearer token, inline or in a file).
type Config struct {
	Path       string // the file it was read from
	Server     string
	ServerName string // tls-server-name
	CA         []byte // PEM; nil means the system's roots
	Namespace  string // the context's namespace, if any

	CertData, KeyData []byte // embedded client certificate and key (PEM)
	CertFile, KeyFile string // or files, reread at each new connection
	Token             string
	TokenFile         string // reread at each request
}

// kubeconfig is the file's schema, the parts read here.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			TLSServerName            string `yaml:"tls-server-name"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			ClientCertificate     string         `yaml:"client-certificate"`
			ClientCertificateData string         `yaml:"client-certificate-data"`
			ClientKey             string         `yaml:"client-key"`
			ClientKeyData         string         `yaml:"client-key-data"`
			Token                 string         `yaml:"token"`
			TokenFile             string         `yaml:"tokenFile"`
			Username              string         `yaml:"username"`
			Exec                  map[string]any `yaml:"exec"`
			AuthProvider          map[string]any `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// LoadKubeconfig reads a kubeconfig's current context. Relative paths in it
// are relative to the file's directory, as kubectl reads them. Credential
// plugins (exec, auth-provider), basic auth and insecure-skip-tls-verify
// are refused.
func LoadKubeconfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	return parseKubeconfig(path, b)
}

func parseKubeconfig(path string, b []byte) (*Config, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kubeconfig %s: %s", path, fmt.Sprintf(format, a...))
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	cfg := &Config{Path: path}
	var err error
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, cfg.Namespace, found = c.Context.Cluster, c.Context.User, c.Context.Namespace, true
		}
	}
	if !found {
		return nil, bad("no context %q", ctxName)
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	found = false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		cl := c.Cluster
		if cl.InsecureSkipTLSVerify {
			return nil, bad("cluster %q: insecure-skip-tls-verify is not supported: give the cluster's CA", clusterName)
		}
		cfg.Server, cfg.ServerName = cl.Server, cl.TLSServerName
		switch {
		case cl.CertificateAuthorityData != "":
			if cfg.CA, err = decodeData(cl.CertificateAuthorityData); err != nil {
				return nil, bad("certificate-authority-data: %v", err)
			}
		case cl.CertificateAuthority != "":
			if cfg.CA, err = os.ReadFile(abs(cl.CertificateAuthority)); err != nil {
				return nil, bad("certificate-authority: %v", err)
			}
		}
	}
	if !found {
		return nil, bad("no cluster %q", clusterName)
	}
	found = false
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		found = true
		us := u.User
		switch {
		case us.Exec != nil || us.AuthProvider != nil:
			return nil, bad("user %q: credential plugins (exec, auth-provider) are not supported: use a client certificate or a token", userName)
		case us.Username != "":
			return nil, bad("user %q: basic auth is not supported: use a client certificate or a token", userName)
		}
		if us.ClientCertificateData != "" {
			if cfg.CertData, err = decodeData(us.ClientCertificateData); err != nil {
				return nil, bad("client-certificate-data: %v", err)
			}
		}
		if us.ClientKeyData != "" {
			if cfg.KeyData, err = decodeData(us.ClientKeyData); err != nil {
				return nil, bad("client-key-data: %v", err)
			}
		}
		cfg.CertFile, cfg.KeyFile = abs(us.ClientCertificate), abs(us.ClientKey)
		cfg.Token, cfg.TokenFile = us.Token, abs(us.TokenFile)
	}
	if !found {
		return nil, bad("no user %q", userName)
	}
	if cfg.Server == "" {
		return nil, bad("cluster %q has no server", clusterName)
	}
	if !cfg.hasClientCert() && cfg.Token == "" && cfg.TokenFile == "" {
		return nil, bad("user %q has no client certificate and no token", userName)
	}
	if cfg.hasClientCert() {
		if _, err := cfg.clientCert(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// decodeData decodes a kubeconfig *-data field: base64 of PEM.
func decodeData(s string) ([]byte, error) {
	out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not base64")
	}
	return out, nil
}

func (cfg *Config) hasClientCert() bool {
	return len(cfg.CertData) > 0 || cfg.CertFile != "" || len(cfg.KeyData) > 0 || cfg.KeyFile != ""
}

// clientCert loads the client certificate and key, from files if they are
// files (a kubelet's kubelet-client-current.pem holds both).
func (cfg *Config) clientCert() (*tls.Certificate, error) {
	cert, key := cfg.CertData, cfg.KeyData
	var err error
	if cfg.CertFile != "" {
		if cert, err = os.ReadFile(cfg.CertFile); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: client certificate: %w", cfg.Path, err)
		}
	}
	if cfg.KeyFile != "" {
		if key, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: client key: %w", cfg.Path, err)
		}
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: client certificate and key: %w", cfg.Path, err)
	}
	return &pair, nil
}

// NodeName is the node a credential belongs to: NAME in its client
// certificate's subject, "system:node:NAME" (the kubelet's) or
// "runtimeclassd:node:NAME" (a fleet certificate of the node's own, as
// docs/FLEET.md recommends). It fails for any other credential; give the
// node's name explicitly then.
func (cfg *Config) NodeName() (string, error) {
	if !cfg.hasClientCert() {
		return "", fmt.Errorf("kubeconfig %s: no client certificate to take the node's name from", cfg.Path)
	}
	pair, err := cfg.clientCert()
	if err != nil {
		return "", err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s: client certificate: %w", cfg.Path, err)
	}
	name, ok := strings.CutPrefix(leaf.Subject.CommonName, "system:node:")
	if !ok {
		// A fleet credential of the node's own, as docs/FLEET.md recommends.
		name, ok = strings.CutPrefix(leaf.Subject.CommonName, "runtimeclassd:node:")
	}
	if !ok || name == "" {
		return "", fmt.Errorf("kubeconfig %s: client certificate is for %q, not a node (system:node:NAME or runtimeclassd:node:NAME)", cfg.Path, leaf.Subject.CommonName)
	}
	return name, nil
}

// certPool parses every certificate in a PEM bundle.
func certPool(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bytes.TrimSpace(b); len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return pool, nil
}
