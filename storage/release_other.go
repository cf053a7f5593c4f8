//go:build !unix

package storage

// releaseMapped does nothing where the advice is not available (see the
// unix version).
func releaseMapped(v []byte) {}
