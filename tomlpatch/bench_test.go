package tomlpatch

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// grown is containerd 1.6's default config grown to about lines lines
// with registry mirror tables, as make bench grows it.
func grown(tb testing.TB, lines int) []byte {
	src, err := os.ReadFile("../ctrdconfig/testdata/configs/v2-default-1.6.toml")
	if err != nil {
		tb.Fatal(err)
	}
	b := bytes.NewBuffer(bytes.Clone(src))
	for i, n := 0, bytes.Count(src, []byte("\n")); n < lines; i, n = i+1, n+3 {
		fmt.Fprintf(b, "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"mirror%04d.example.com\"]\n  endpoint = [\"https://mirror%04d.example.com\"]\n", i, i)
	}
	return b.Bytes()
}

// BenchmarkParse parses containerd's default config grown 1x to 100x.
// ns/line should stay flat if the cost is linear.
func BenchmarkParse(b *testing.B) {
	for _, lines := range []int{0, 2400, 24000} {
		src := grown(b, lines)
		n := bytes.Count(src, []byte("\n"))
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/line")
		})
	}
}
