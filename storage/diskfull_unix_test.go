//go:build unix

package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

const envDiskFull = "DMAD_STORAGE_DISKFULL" // the project path, in the child

// TestHelperDiskFull is not a test: it is the child of
// TestWriteOnAFullDiskKeepsTheProject. It lowers its file-size limit to the
// project's size, so any write that grows the file fails as on a full disk
// (EFBIG instead of ENOSPC; the path through bbolt is the same), and tries
// to save a model of 40 MB.
func TestHelperDiskFull(t *testing.T) {
	path := os.Getenv(envDiskFull)
	if path == "" {
		t.Skip("helper process body; runs only as a child")
	}
	p, err := Open(path, Options{})
	if err != nil {
		os.Stdout.WriteString("open: " + err.Error())
		os.Exit(2)
	}
	st, _ := os.Stat(path)
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails instead of killing
	lim := syscall.Rlimit{Cur: uint64(st.Size()), Max: uint64(st.Size())}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		os.Stdout.WriteString("setrlimit: " + err.Error())
		os.Exit(2)
	}
	big := randBytes(9, 40<<20) // more than bbolt keeps allocated ahead (16 MiB)
	err = p.SaveModel(context.Background(), &ModelRecord{BackboneID: p.Settings().Backbone},
		map[string]io.Reader{PartNormalBank: bytes.NewReader(big)})
	if err == nil {
		st2, _ := os.Stat(path)
		os.Stdout.WriteString(fmt.Sprintf("saved: no error (%d -> %d bytes)", st.Size(), st2.Size()))
		os.Exit(3)
	}
	os.Stdout.WriteString("error: " + err.Error())
	p.Close()
	os.Exit(0)
}

// A write that the disk cannot take fails with an error naming the project,
// and everything stored before is kept: the file opens, passes the full
// check, and the earlier model reads back byte for byte.
func TestWriteOnAFullDiskKeepsTheProject(t *testing.T) {
	p := newProject(t)
	rec, data := saveTestModel(t, p, 1, [3]int{300 << 10, 20 << 10, 100}, true)
	path := p.Path()
	p.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDiskFull$")
	cmd.Env = append(os.Environ(), envDiskFull+"="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	msg := string(out)
	if !strings.HasPrefix(msg, "error: ") || !strings.Contains(msg, path) {
		t.Fatalf("want one error naming the project, got %q", msg)
	}
	t.Log(msg)

	rep, err := CheckFile(context.Background(), path)
	if err != nil || !rep.OK() {
		t.Fatalf("check after the failed write: %+v, %v", rep, err)
	}
	q, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	models, err := q.Models()
	if err != nil || len(models) != 1 || models[0].Version != rec.Version {
		t.Fatalf("models after the failed write: %+v, %v", models, err)
	}
	for name, want := range data {
		r, err := q.OpenModelPart(rec.Version, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("part %s changed (%d bytes, %v)", name, len(got), err)
		}
	}
}
