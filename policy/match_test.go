package policy

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// matchers pairs every byte matcher with the expression it replaces.
var matchers = []struct {
	name string
	re   *regexp.Regexp
	f    func(string) bool
}{
	{"isDNSLabel", regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`), isDNSLabel},
	{"isDNSSubdomain", regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`), isDNSSubdomain},
	{"isLabelName", regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`), isLabelName},
	{"isRuntimeType", regexp.MustCompile(`^io\.containerd\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?\.v[0-9]+$`), isRuntimeType},
	{"isPlainWord", regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`), isPlainWord},
	{"isAnnotation", regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`), isAnnotation},
	{"isBareKey", regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`), isBareKey},
	{"isQuantity", regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`), isQuantity},
}

func checkMatchers(t *testing.T, s string) {
	t.Helper()
	for _, m := range matchers {
		if got, want := m.f(s), m.re.MatchString(s); got != want {
			t.Errorf("%s(%q) = %v, the expression says %v", m.name, s, got, want)
		}
	}
}

var matcherSeeds = []string{
	"", "a", "-", "a-", "-a", "kata", "kata-clh", "Kata", "a_b", "a.b", "a..b", ".a", "a.", "A.b-C_d",
	"io.containerd.kata.v2", "io.containerd.runc.v2", "io.containerd.kata-qemu.v2", "io.containerd..v2",
	"io.containerd.x.v", "io.containerd.x.v2.v3", "io.containerd.a.b.v2", "io.containerd.x_.v2", "io.containerd._x.v2",
	"io.containerd.x.V2", "io.containerd.x.v02", "xio.containerd.x.v2", "io.containerd.v2", "io.containerd.x-y_z.v10",
	"io.katacontainers.config.hypervisor.default_memory", "example.com/x", "a/b/c", "/x", "x/", "Example.com/x",
	"a..b/x", "a.b/c.d-e_f", "a-.b/c", "x-", "x.", "é", "a\nb", "a\x00",
	"0", "1", "250m", "160Mi", "1.5Gi", "1.", ".5", "1.5.5", "1Ki2", "1mi", "1KI", "12e3", "1m ", " 1m", "0001",
	strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a", 63),
}

func TestMatchersAgreeWithTheirExpressions(t *testing.T) {
	for _, s := range matcherSeeds {
		checkMatchers(t, s)
	}
	// Random strings over the alphabet the expressions care about.
	const alphabet = "aAzZ09-_./vioKMGmkEP ."
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(4) == 0 {
			b = append([]byte("io.containerd."), b...)
		}
		checkMatchers(t, string(b))
		if t.Failed() {
			return
		}
	}
}

func FuzzMatchers(f *testing.F) {
	for _, s := range matcherSeeds {
		f.Add(s)
	}
	f.Fuzz(checkMatchers)
}
