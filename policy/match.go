package policy

import "strings"

// The policy's name rules, written out as byte matchers rather than
// compiled from regular expressions: compiling them at package
// initialisation cost every start of every command a tenth of the one-shot
// command's time, whether it reads a policy or not. Each comment gives the
// expression the matcher implements; match_test.go checks every matcher
// against its expression, and FuzzMatchers keeps checking.

func isLower(c byte) bool      { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isLowerAlnum(c byte) bool { return isLower(c) || isDigit(c) }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// all reports whether every byte of s satisfies ok.
func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isDNSLabel: ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$
func isDNSLabel(s string) bool {
	return s != "" && isLowerAlnum(s[0]) && isLowerAlnum(s[len(s)-1]) &&
		all(s, func(c byte) bool { return isLowerAlnum(c) || c == '-' })
}

// isDNSSubdomain: ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$
// (DNS labels joined by dots).
func isDNSSubdomain(s string) bool {
	for {
		label, rest, more := strings.Cut(s, ".")
		if !isDNSLabel(label) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isLabelName: ^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$
func isLabelName(s string) bool {
	return s != "" && isAlnum(s[0]) && isAlnum(s[len(s)-1]) &&
		all(s, func(c byte) bool { return isAlnum(c) || c == '-' || c == '_' || c == '.' })
}

// isRuntimeType: ^io\.containerd\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?\.v[0-9]+$
func isRuntimeType(s string) bool {
	rest, ok := strings.CutPrefix(s, "io.containerd.")
	if !ok {
		return false
	}
	// The name has no dots, so the version is after the last one.
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 {
		return false
	}
	name, version := rest[:dot], rest[dot+1:]
	digits, ok := strings.CutPrefix(version, "v")
	if !ok || digits == "" || !all(digits, isDigit) {
		return false
	}
	return name != "" && isLowerAlnum(name[0]) && isLowerAlnum(name[len(name)-1]) &&
		all(name, func(c byte) bool { return isLowerAlnum(c) || c == '_' || c == '-' })
}

// isPlainWord: ^[A-Za-z0-9][A-Za-z0-9._-]*$
func isPlainWord(s string) bool {
	return s != "" && isAlnum(s[0]) &&
		all(s, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' })
}

// isAnnotation: an optional DNS subdomain and a slash, then a label name:
// ^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$
func isAnnotation(s string) bool {
	// Neither part holds a slash: the prefix ends at the first one.
	if prefix, name, found := strings.Cut(s, "/"); found {
		return isDNSSubdomain(prefix) && isLabelName(name)
	}
	return isLabelName(s)
}

// isBareKey: ^[A-Za-z0-9_-]{1,64}$
func isBareKey(s string) bool {
	return s != "" && len(s) <= 64 && all(s, func(c byte) bool { return isAlnum(c) || c == '_' || c == '-' })
}

// quantitySuffixes are the suffixes of a Kubernetes quantity.
var quantitySuffixes = []string{"", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}

// isQuantity: ^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$
func isQuantity(s string) bool {
	digits := func() bool {
		n := 0
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		s = s[n:]
		return n > 0
	}
	if !digits() {
		return false
	}
	if rest, ok := strings.CutPrefix(s, "."); ok {
		if s = rest; !digits() {
			return false
		}
	}
	for _, suffix := range quantitySuffixes {
		if s == suffix {
			return true
		}
	}
	return false
}
