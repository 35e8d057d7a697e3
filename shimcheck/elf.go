package shimcheck

import (
	"debug/elf"
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

func elfMachine(r io.ReaderAt) (elf.Machine, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return 0, fmt.Errorf("not an ELF binary or a script: %w", err)
	}
	return f.Machine, nil
}

func machineName(m elf.Machine) string {
	for arch, mm := range machines {
		if mm == m {
			return arch
		}
	}
	return m.String()
}
