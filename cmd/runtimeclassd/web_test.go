//go:build !runtimeclassd_lite

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/daemon"
)

// TestLandingPage: / is a page that names runtimeclassd and its version
// and links /metrics, /healthz and /readyz; any other unknown path is 404;
// /metrics has build_info and the Go runtime's metrics.
func TestLandingPage(t *testing.T) {
	t.Parallel()
	e := &env{}
	ready := make(chan struct{})
	mux, err := e.mux(daemon.NewMetrics("9.9.9"), ready)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/")
	if code != 200 || !strings.Contains(body, "runtimeclassd") || !strings.Contains(body, version) {
		t.Errorf("/: %d\n%s", code, body)
	}
	for _, link := range []string{`href="/metrics"`, `href="/healthz"`, `href="/readyz"`} {
		if !strings.Contains(body, link) {
			t.Errorf("/ does not link %s", link)
		}
	}
	if strings.Contains(body, "debug/pprof") {
		t.Error("/ links profiling, which is not served")
	}
	if code, _ := get("/nothing-here"); code != 404 {
		t.Errorf("/nothing-here: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `runtimeclassd_build_info{branch=`) || !strings.Contains(body, `version="9.9.9"`) || !strings.Contains(body, "go_goroutines ") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before the first reconcile: %d", code)
	}
	close(ready)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after: %d", code)
	}
}
