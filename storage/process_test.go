package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Child processes: the test binary re-executed with -test.run=TestHelperProcess
// and these variables set.
const (
	envHelper = "DMAD_STORAGE_HELPER" // "hold" or "save-models"
	envPath   = "DMAD_STORAGE_PATH"
)

// TestHelperProcess is not a test: it is the body of the child processes of
// TestLockContentionChild and TestCrashSafety.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process body; runs only as a child")
	}
	path := os.Getenv(envPath)
	p, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "hold":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin) // hold the lock until the parent closes stdin
		p.Close()
		os.Exit(0)
	case "save-models":
		p.chunk = 256 << 10
		fmt.Println("ready")
		for i := uint64(1); ; i++ {
			// Several MB across several buckets in one transaction each.
			rec, _ := saveTestModel(t, p, i, [3]int{2<<20 + int(i%7)<<16, 1<<20 + int(i%5)<<12, 200 << 10}, true)
			p.AppendTrainingLog(rec.Version, map[string]int{"saved": rec.Version})
			if rec.Version > 3 { // keep the file small; freed pages get reused
				p.DeleteModel(rec.Version - 3)
			}
			fmt.Println("saved", rec.Version)
		}
	}
	os.Exit(3)
}

func helperCmd(t *testing.T, mode, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envPath+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// waitReady reads child stdout until "ready"; the rest is drained in the background.
func waitReady(t *testing.T, out io.Reader) {
	t.Helper()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "ready" {
			go io.Copy(io.Discard, out)
			return
		}
	}
	t.Fatal("child process ended before it was ready")
}

func TestLockContentionSameProcess(t *testing.T) {
	p := newProject(t)
	start := time.Now()
	_, err := Open(p.Path(), Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second open of a locked project succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "is open in another process (pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q does not name the owner pid %d", err, os.Getpid())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("lock wait took %v", d) // a hang, not a timing claim
	}
	// Read-only opens also wait for a writer.
	if _, err := Open(p.Path(), Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open during a writer: %v", err)
	}
	// Once closed, the project opens again and the side file is gone.
	path := p.Path()
	p.Close()
	if _, err := os.Stat(path + ".lock-info"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock-info after close: %v", err)
	}
	q, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
}

func TestLockContentionChild(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	p := newProject(t)
	path := p.Path()
	p.Close()
	cmd := helperCmd(t, "hold", path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	waitReady(t, stdout)
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	want := fmt.Sprintf("project %s is open in another process (pid %d", path, cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("open while child holds it: %v; want %q", err, want)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open after child exit: %v", err)
	}
	q.Close()
}

// TestCrashSafety kills a child that saves models in a loop (each save is
// several MB across several buckets in one transaction) with SIGKILL at random
// points, several times, and checks after each kill that the project opens,
// every stored model is complete with valid checksums, and the active marker
// points to a complete model.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	p := newProject(t)
	path := p.Path()
	p.Close()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const rounds = 6
	lastVersion := 0
	for round := range rounds {
		cmd := helperCmd(t, "save-models", path)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, stdout)
		delay := time.Duration(50+r.IntN(600)) * time.Millisecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		q, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d (killed after %v): reopen: %v", round, delay, err)
		}
		if err := q.Verify(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		models, err := q.Models()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, m := range models {
			names := []string{}
			for _, part := range m.Parts {
				names = append(names, part.Name)
			}
			if !slices.Equal(names, []string{PartAnomalyBank, PartMapper, PartNormalBank}) {
				t.Fatalf("round %d: model %d has parts %v", round, m.Version, names)
			}
			if err := q.VerifyModel(m.Version); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if len(models) > 0 {
			act, err := q.ActiveModel()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if act.Version != models[len(models)-1].Version {
				t.Fatalf("round %d: active %d, last complete %d", round, act.Version, models[len(models)-1].Version)
			}
			// Full streamed read of the active model's parts.
			for _, part := range act.Parts {
				br, _ := q.OpenModelPart(act.Version, part.Name)
				if n, err := io.Copy(io.Discard, br); err != nil || n != part.Size {
					t.Fatalf("round %d: part %s: %d bytes, %v", round, part.Name, n, err)
				}
			}
		}
		last := 0
		if len(models) > 0 {
			last = models[len(models)-1].Version
		}
		if last < lastVersion {
			t.Fatalf("round %d: newest model %d, had %d", round, last, lastVersion)
		}
		t.Logf("round %d: killed after %v; %d models complete, newest %d", round, delay, len(models), last)
		lastVersion = last
		q.Close()
	}
	if lastVersion == 0 {
		t.Fatal("the child never completed a save; the test proved nothing")
	}
}

func TestLockHeldByReader(t *testing.T) {
	p := newProject(t)
	path := p.Path()
	p.Close()
	// A stale side file of a dead writer must not be blamed.
	os.WriteFile(path+".lock-info", []byte(`{"pid":999999999,"host":"`+hostname()+`"}`), 0o644)
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || strings.Contains(err.Error(), "999999999") || !strings.Contains(err.Error(), "read-only viewer") {
		t.Fatalf("writer blocked by a reader: %v", err)
	}
	// Readers share the lock.
	r2, err := Open(path, Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	r2.Close()
}

func hostname() string { h, _ := os.Hostname(); return h }
