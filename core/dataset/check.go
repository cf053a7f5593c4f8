package dataset

// CheckImage is the quick validity check Open applies to every image: the
// header decodes and the file is not obviously truncated (PNG IEND chunk,
// JPEG end-of-image marker, BMP pixel array inside the file). It returns the
// size with the EXIF orientation applied.
func CheckImage(path string) (w, h int, err error) { return checkImage(path, false) }

// DecodeImage is the full check Options.FullDecode applies: the whole image
// decodes. Slower than CheckImage, it also finds damage inside compressed
// data that a well-formed file can hide (a JPEG has no checksum; a PNG's
// chunk CRCs can be valid over broken data).
func DecodeImage(path string) (w, h int, err error) { return checkImage(path, true) }
