package shimcheck

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
)

// machines maps GOARCH to the ELF machine its binaries have.
var machines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"386":     elf.EM_386,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// elfMachine reads the machine an ELF binary is built for from its file
// header, the 64 bytes (52 for 32-bit ELF) that the kernel reads too. A
// header that is not a well-formed one goes to debug/elf, which says why.
// Section headers are not read (debug/elf reads and decodes them all, with
// their names: 25 times the work, for a field in the header); so a binary
// whose header is sound but whose section table is damaged passes here, as
// it would pass the kernel's exec.
func elfMachine(r io.ReaderAt) (elf.Machine, error) {
	var h [64]byte
	n, _ := r.ReadAt(h[:], 0)
	if m, ok := headerMachine(h[:n]); ok {
		return m, nil
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return 0, fmt.Errorf("not an ELF binary or a script: %w", err)
	}
	return f.Machine, nil
}

// headerMachine returns e_machine of a well-formed ELF file header: the
// magic, a known class and byte order, version 1 in e_ident and in
// e_version, and the whole header there.
func headerMachine(h []byte) (elf.Machine, bool) {
	if len(h) < elf.EI_NIDENT || string(h[:4]) != elf.ELFMAG || elf.Version(h[elf.EI_VERSION]) != elf.EV_CURRENT {
		return 0, false
	}
	var size int
	switch elf.Class(h[elf.EI_CLASS]) {
	case elf.ELFCLASS32:
		size = 52
	case elf.ELFCLASS64:
		size = 64
	default:
		return 0, false
	}
	var order binary.ByteOrder
	switch elf.Data(h[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		order = binary.BigEndian
	default:
		return 0, false
	}
	if len(h) < size || elf.Version(order.Uint32(h[20:24])) != elf.EV_CURRENT {
		return 0, false
	}
	return elf.Machine(order.Uint16(h[18:20])), true
}

func machineName(m elf.Machine) string {
	for arch, mm := range machines {
		if mm == m {
			return arch
		}
	}
	return m.String()
}
