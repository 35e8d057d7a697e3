package ctrdconfig

import (
	"fmt"
	"testing"
)

func benchRuntimes(n int) []Runtime {
	rs := make([]Runtime, n)
	for i := range rs {
		rs[i] = Runtime{
			Name: fmt.Sprintf("kata-%04d", i),
			Fields: map[string]any{
				"runtime_type":                    "io.containerd.kata.v2",
				"privileged_without_host_devices": true,
				"pod_annotations":                 []string{"io.katacontainers.config.hypervisor.default_memory"},
			},
			Options: map[string]any{"ConfigPath": "/opt/kata/share/defaults/kata-containers/configuration.toml"},
		}
	}
	return rs
}

// BenchmarkPatch is apply's in-process work on containerd's default config:
// parse, place, render, check the output parses. "insert" adds n handlers to
// the pristine file; "reapply" patches the result again with the same n
// handlers (the daemon's steady state: nothing changes). ns/op divided by n
// should stay flat from 10 to 1000 handlers if the cost is linear.
func BenchmarkPatch(b *testing.B) {
	for _, file := range []string{"v2-default-1.6.toml", "v4-default-2.4.toml"} {
		src := readConfig(b, file)
		for _, n := range []int{1, 10, 100, 1000} {
			rs := benchRuntimes(n)
			b.Run(fmt.Sprintf("%s/insert/handlers=%d", file, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Patch(src, rs, Options{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/handler")
			})
			out, err := Patch(src, rs, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/reapply/handlers=%d", file, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					res, err := Patch(out.Out, rs, Options{})
					if err != nil || res.Changed {
						b.Fatal(err, res.Changed)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/handler")
			})
		}
	}
}
