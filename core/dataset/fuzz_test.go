package dataset

import (
	"github.com/dmad/workstation/internal/alloccheck"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzVisACSV: any split CSV gives samples or problems, never a crash, and
// never a sample whose image or mask lies outside the dataset folder.
func FuzzVisACSV(f *testing.F) {
	f.Add([]byte("object,split,label,image,mask\ncandle,train,normal,candle/Data/Images/Normal/0000.JPG,\n" +
		"candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\n"))
	f.Add([]byte("\ufeffObject,Split,Label,Image,Mask\npcb1,test,anomaly,../../etc/passwd,/etc/shadow\n"))
	root := f.TempDir()
	csvPath := filepath.Join(root, "split.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(csvPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var samples []Sample
		var err error
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() { samples, _, err = readVisA(root, csvPath) })
		if err != nil {
			return
		}
		for _, s := range samples {
			for _, p := range []string{s.Path, s.MaskPath} {
				if p != "" && p != root && !strings.HasPrefix(p, root+string(filepath.Separator)) {
					t.Fatalf("sample path %q outside the dataset %s", p, root)
				}
			}
		}
	})
}
