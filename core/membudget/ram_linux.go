package membudget

import (
	"os"
)

// TotalRAM returns the machine's RAM (MemTotal of /proc/meminfo).
func TotalRAM() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseMeminfo(string(b))
}
