//go:build !linux

package membudget

// TotalRAM is unknown outside Linux (no cgo-free way on every platform):
// Default then falls back to Fallback.
func TotalRAM() (int64, bool) { return 0, false }
