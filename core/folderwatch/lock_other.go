//go:build !unix && !windows

package folderwatch

import "os"

// lockFile does nothing where there is no file locking (e.g. wasm).
func lockFile(*os.File) error { return nil }
