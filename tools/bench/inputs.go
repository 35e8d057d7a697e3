package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// inputs are the files the figures run on, in a work directory.
type inputs struct {
	dir          string
	def16, def24 string // containerd 1.6's and 2.4.2's default configs
	big          string // 1.6's default config grown to 5,000 lines
	policy1      string // a policy dir with one handler
	// scaled[k] is 1.6's default config grown to k times its size.
	scaled map[int]string
	// handlers[n] is a policy dir with n handlers.
	handlers map[int]string
}

var (
	sizeFactors   = []int{1, 2, 5, 10, 20, 50, 100}
	handlerCounts = []int{1, 3, 10, 30, 100, 300, 1000}
)

func makeInputs(dir, ctrd1, ctrd2 string) (*inputs, error) {
	in := &inputs{dir: dir, scaled: map[int]string{}, handlers: map[int]string{}}
	def16, err := exec.Command(ctrd1, "config", "default").Output()
	if err != nil {
		return nil, fmt.Errorf("%s config default: %w", ctrd1, err)
	}
	def24, err := exec.Command(ctrd2, "config", "default").Output()
	if err != nil {
		return nil, fmt.Errorf("%s config default: %w", ctrd2, err)
	}
	write := func(name string, b []byte) (string, error) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		return p, os.WriteFile(p, b, 0o644)
	}
	if in.def16, err = write("etc-16/config.toml", def16); err != nil {
		return nil, err
	}
	if in.def24, err = write("etc-24/config.toml", def24); err != nil {
		return nil, err
	}
	if in.big, err = write("etc-big/config.toml", grow(def16, 5000)); err != nil {
		return nil, err
	}
	lines := bytes.Count(def16, []byte("\n"))
	for _, k := range sizeFactors {
		if in.scaled[k], err = write(fmt.Sprintf("etc-x%d/config.toml", k), grow(def16, k*lines)); err != nil {
			return nil, err
		}
	}
	for _, n := range append([]int{1}, handlerCounts...) {
		d := filepath.Join(dir, fmt.Sprintf("policy-%d", n))
		if _, err := write(filepath.Join(filepath.Base(d), "handlers.toml"), []byte(policy(n))); err != nil {
			return nil, err
		}
		in.handlers[n] = d
	}
	in.policy1 = in.handlers[1]
	return in, nil
}

// grow appends registry mirror tables to a version 2 config until it has
// lines lines: a config that containerd 1.x and nvidia-ctk read, with the
// CRI plugin's section as big as a busy node's.
func grow(def []byte, lines int) []byte {
	var b bytes.Buffer
	b.Write(def)
	for i := 0; bytes.Count(b.Bytes(), []byte("\n")) < lines; i++ {
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"mirror%04d.example.com\"]\n  endpoint = [\"https://mirror%04d.example.com\"]\n", i, i)
	}
	return b.Bytes()
}

// policy has n handlers, each the stanza nvidia-ctk writes for its
// runtime, pointed at a binary this machine has (so that host checks
// pass).
func policy(n int) string {
	var b strings.Builder
	for i := range n {
		name := "nvidia"
		if n > 1 {
			name = fmt.Sprintf("runc-%04d", i)
		}
		fmt.Fprintf(&b, "[handlers.%s]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.%s.options]\nBinaryName = \"/usr/bin/runc\"\n", name, name)
	}
	return b.String()
}
