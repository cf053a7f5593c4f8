package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/synth"
)

// TestLinuxBundle builds the Linux bundle with scripts/dist.sh (the binary
// these tests built, the tiny test backbone as the bundled one), unpacks it
// into a temp folder and runs it from another working directory with an
// empty HOME and no $ONNXRUNTIME_LIB: the program must find ONNX Runtime
// and the backbone beside itself, train and inspect.
func TestLinuxBundle(t *testing.T) {
	for _, tool := range []string{"bash", "tar", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	root := t.TempDir()
	bb, err := encodertest.Write(filepath.Join(root, "bb"), 5)
	if err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(root, "dist")
	cmd := exec.Command("bash", "scripts/dist.sh", "linux")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "DIST_OUT="+dist, "DIST_BIN="+binary, "BACKBONE_FILE="+bb, "XZ_OPT=-0", "DIST_NO_SETUP=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dist.sh linux: %v\n%s", err, out)
	}
	name := "dmad-workstation-" + workstation.Version() + "-linux-x64"
	archive := filepath.Join(dist, name+".tar.xz")
	unpacked := filepath.Join(root, "unpacked")
	if err := os.MkdirAll(unpacked, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xJf", archive, "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", archive, err, out)
	}
	dir := filepath.Join(unpacked, name)
	for _, f := range []string{"workstation", "libonnxruntime.so.1", "models/tiny.onnx", "models/tiny.json", "README.txt",
		"install-desktop.sh", "share/applications/io.github.dmad.workstation.desktop", "share/icons/io.github.dmad.workstation.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("bundle lacks %s: %v", f, err)
		}
	}

	// A user's machine: an empty HOME, no XDG folders, no ONNX Runtime hint,
	// started from an unrelated folder.
	home := filepath.Join(root, "home")
	work := filepath.Join(root, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	run := func(args ...string) string {
		t.Helper()
		c := exec.Command(filepath.Join(dir, "workstation"), args...)
		c.Dir, c.Env = work, env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("workstation %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("version")
	if !strings.Contains(out, "workstation "+workstation.Version()) || !strings.Contains(out, filepath.Join(dir, "libonnxruntime.so.1")) {
		t.Fatalf("version does not report the bundle's version and runtime:\n%s", out)
	}
	if out := run("backbone", "list"); !regexp.MustCompile(`(?m)^tiny\s.*\sbundled$`).MatchString(out) {
		t.Fatalf("backbone list does not show the bundled backbone:\n%s", out)
	}
	data := filepath.Join(root, "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 1, TrainPerCategory: 8, TestGoodPerCategory: 3, TestDefectPerCategory: 3, Size: 64, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	run(append([]string{"train", "--project", "p.db", "--data", data, "--backbone", "tiny"}, small...)...)
	run("inspect", "--project", "p.db", "--input", filepath.Join(data, "tile"), "--out", "report", "--quiet", "--threads", "2")
	scores, err := os.ReadFile(filepath.Join(work, "report", "scores.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(scores), "\n"); n != 7 { // header + 6 test images
		t.Fatalf("scores.csv has %d lines, want 7:\n%s", n, scores)
	}
	html, err := os.ReadFile(filepath.Join(work, "report", "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "Written by "+workstation.NameVersion()) {
		t.Error("report.html footer lacks the product version")
	}
	// Nothing of ours was written into HOME: the bundled backbone needs no
	// import and the CLI keeps no settings. ONNX Runtime itself keeps a
	// device id in $XDG_CACHE_HOME (default ~/.cache)/Microsoft/DeveloperTools/.onnxruntime
	// when its environment starts; that is the only thing allowed there.
	ortCache := filepath.Join(home, ".cache", "Microsoft")
	filepath.WalkDir(home, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == home || p == filepath.Dir(ortCache) || p == ortCache {
			return err
		}
		if strings.HasPrefix(p, ortCache+string(filepath.Separator)) {
			return filepath.SkipDir
		}
		t.Errorf("the bundle wrote %s into HOME", p)
		return nil
	})
}
