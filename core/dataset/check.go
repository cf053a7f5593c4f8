package dataset

// CheckImage is the quick validity check Open applies to every image: the
// header decodes and the file is not obviously truncated (PNG IEND chunk,
// JPEG end-of-image marker, BMP pixel array inside the file). It returns the
// size with the EXIF orientation applied.
func CheckImage(path string) (w, h int, err error) { return checkImage(path, false) }
