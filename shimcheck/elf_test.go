package shimcheck

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestHeaderMachineAgreesWithDebugELF: wherever the header alone is taken
// as sound, debug/elf reads the same machine from the whole file; on the
// executables of this machine, and on headers of every class and byte
// order, damaged at random.
func TestHeaderMachineAgreesWithDebugELF(t *testing.T) {
	t.Parallel()
	var files [][]byte
	for _, dir := range []string{"/bin", "/usr/bin", "/usr/sbin"} {
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for i, n := range names {
			if i%25 != 0 {
				continue
			}
			if fi, err := os.Lstat(n); err != nil || !fi.Mode().IsRegular() || fi.Size() > 2<<20 {
				continue
			}
			if b, err := os.ReadFile(n); err == nil {
				files = append(files, b)
			}
		}
	}
	for _, class := range []elf.Class{elf.ELFCLASS32, elf.ELFCLASS64} {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			files = append(files, syntheticELF(class, order, elf.EM_AARCH64))
		}
	}
	if len(files) < 5 {
		t.Fatalf("only %d files to compare", len(files))
	}
	r := rand.New(rand.NewPCG(5, 6))
	sound := 0
	for i, b := range files {
		for n := range 20 {
			m := bytes.Clone(b)
			if n > 0 { // damage the header
				for range 1 + r.IntN(3) {
					m[r.IntN(min(len(m), 64))] = byte(r.IntN(256))
				}
			}
			got, ok := headerMachine(m[:min(len(m), 64)])
			f, err := elf.NewFile(bytes.NewReader(m))
			if !ok {
				continue
			}
			sound++
			if err == nil && f.Machine != got {
				t.Fatalf("file %d, damage %d: header says %v, debug/elf %v", i, n, got, f.Machine)
			}
		}
	}
	if sound < len(files) {
		t.Fatalf("only %d sound headers of %d files", sound, len(files))
	}
}

// syntheticELF is an ELF file header of a class and byte order, and
// nothing else.
func syntheticELF(class elf.Class, order binary.ByteOrder, m elf.Machine) []byte {
	size, data := 64, elf.ELFDATA2LSB
	if class == elf.ELFCLASS32 {
		size = 52
	}
	if order == binary.BigEndian {
		data = elf.ELFDATA2MSB
	}
	h := make([]byte, size)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION] = byte(class), byte(data), byte(elf.EV_CURRENT)
	order.PutUint16(h[16:], uint16(elf.ET_EXEC))
	order.PutUint16(h[18:], uint16(m))
	order.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	return h
}

// TestNotELFErrorsUnchanged: what is not an ELF header is still refused
// with debug/elf's own words.
func TestNotELFErrorsUnchanged(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{[]byte("MZ garbage"), {}, []byte("\x7fELF"), append([]byte("\x7fELF\x09\x01\x01"), make([]byte, 60)...)} {
		_, err := elfMachine(bytes.NewReader(b))
		_, want := elf.NewFile(bytes.NewReader(b))
		if err == nil || want == nil || err.Error() != "not an ELF binary or a script: "+want.Error() {
			t.Errorf("%q: %v, want debug/elf's %v", b, err, want)
		}
	}
}
