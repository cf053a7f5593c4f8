package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The part of the Kubernetes API the manifest uses. Decoding with
// KnownFields makes a misspelt field (readonly, completionmode) an error
// instead of a silently ignored setting.
type job struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       struct {
		CompletionMode        string `yaml:"completionMode"`
		Completions           int    `yaml:"completions"`
		Parallelism           int    `yaml:"parallelism"`
		BackoffLimit          int    `yaml:"backoffLimit"`
		ActiveDeadlineSeconds int    `yaml:"activeDeadlineSeconds"`
		Template              struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type podSpec struct {
	RestartPolicy   string         `yaml:"restartPolicy"`
	SecurityContext map[string]any `yaml:"securityContext"`
	InitContainers  []container    `yaml:"initContainers"`
	Containers      []container    `yaml:"containers"`
	Volumes         []struct {
		Name string `yaml:"name"`
		PVC  *struct {
			ClaimName string `yaml:"claimName"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources    map[string]any `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

func loadJobs(t *testing.T) []job {
	t.Helper()
	b, err := os.ReadFile("inspect-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var jobs []job
	for {
		var j job
		err := dec.Decode(&j)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("inspect-job.yaml document %d: %v", len(jobs)+1, err)
		}
		jobs = append(jobs, j)
	}
	if len(jobs) != 2 {
		t.Fatalf("inspect-job.yaml has %d documents, want the shard job and the merge job", len(jobs))
	}
	for _, j := range jobs {
		if j.APIVersion != "batch/v1" || j.Kind != "Job" {
			t.Fatalf("%s is %s %s, want batch/v1 Job", j.Metadata.Name, j.APIVersion, j.Kind)
		}
	}
	return jobs
}

// flag returns the value after name in args.
func flag(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("args %q have no %s", args, name)
	return ""
}

// mountOf finds the mount that holds p and says whether it is read-only,
// both in the container and on the volume's claim.
func mountOf(t *testing.T, ps podSpec, c container, p string) (volume string, readOnly bool) {
	t.Helper()
	best := ""
	for _, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best) {
			best, volume, readOnly = m.MountPath, m.Name, m.ReadOnly
		}
	}
	if volume == "" {
		t.Fatalf("container %s: %s is on no mounted volume", c.Name, p)
	}
	for _, v := range ps.Volumes {
		if v.Name == volume {
			if v.PVC == nil {
				t.Fatalf("volume %s is not a persistentVolumeClaim", volume)
			}
			if readOnly && !v.PVC.ReadOnly {
				t.Errorf("volume %s is mounted read-only but its claim %s is not readOnly", volume, v.PVC.ClaimName)
			}
			return volume, readOnly
		}
	}
	t.Fatalf("container %s mounts volume %s, which the pod does not declare", c.Name, volume)
	return "", false
}

func claimOf(ps podSpec, volume string) string {
	for _, v := range ps.Volumes {
		if v.Name == volume && v.PVC != nil {
			return v.PVC.ClaimName
		}
	}
	return ""
}

func TestInspectJob(t *testing.T) {
	jobs := loadJobs(t)
	j := jobs[0]
	s := j.Spec
	if s.CompletionMode != "Indexed" {
		t.Errorf("completionMode %q, want Indexed (pods take their shard from JOB_COMPLETION_INDEX)", s.CompletionMode)
	}
	n := s.Completions
	if n < 2 || s.Parallelism < 1 || s.Parallelism > n {
		t.Errorf("completions %d, parallelism %d", n, s.Parallelism)
	}
	ps := s.Template.Spec
	if ps.RestartPolicy != "Never" && ps.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q is not allowed for a Job", ps.RestartPolicy)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Args[0] != "inspect" {
		t.Errorf("args start %q, want inspect", c.Args[0])
	}
	// The shard: the index variable over the completion count.
	if got, want := flag(t, c.Args, "--shard"), "$(JOB_COMPLETION_INDEX)/"+strconv.Itoa(n); got != want {
		t.Errorf("--shard %q, want %q (completions is %d)", got, want, n)
	}
	declared := false
	for _, e := range c.Env {
		if e.Name == "JOB_COMPLETION_INDEX" {
			declared = e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
		}
	}
	if !declared {
		t.Error("JOB_COMPLETION_INDEX is not taken from the job-completion-index annotation")
	}
	// Project, images and backbones read-only; outputs writable, one folder
	// per shard.
	if _, ro := mountOf(t, ps, c, flag(t, c.Args, "--project")); !ro {
		t.Error("the project is not mounted read-only")
	}
	if _, ro := mountOf(t, ps, c, flag(t, c.Args, "--input")); !ro {
		t.Error("the images are not mounted read-only")
	}
	if _, ro := mountOf(t, ps, c, "/var/lib/dmad/dmad-workstation/backbones/x.onnx"); !ro {
		t.Error("the backbone store (XDG_DATA_HOME of the image) is not mounted read-only")
	}
	out := flag(t, c.Args, "--out")
	outVol, ro := mountOf(t, ps, c, out)
	if ro {
		t.Error("the output volume is read-only")
	}
	if !strings.Contains(out, "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("--out %q is shared by all shards; want one folder per index", out)
	}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly && m.Name != outVol {
			t.Errorf("volume %s at %s is writable; only the outputs should be", m.Name, m.MountPath)
		}
	}

	// The merge job reads exactly the n shard folders of the same volume.
	mj := jobs[1]
	mps := mj.Spec.Template.Spec
	if len(mps.Containers) != 1 || len(mps.InitContainers) != 1 {
		t.Fatalf("merge job: %d containers, %d init containers; want 1 and 1", len(mps.Containers), len(mps.InitContainers))
	}
	mc := mps.Containers[0]
	if len(mc.Args) < 2 || mc.Args[0] != "report" || mc.Args[1] != "merge" {
		t.Fatalf("merge args %q, want report merge …", mc.Args)
	}
	var shardDirs []string
	for i := 2; i < len(mc.Args); i++ {
		if mc.Args[i] == "--out" {
			i++
			continue
		}
		shardDirs = append(shardDirs, mc.Args[i])
	}
	if len(shardDirs) != n {
		t.Errorf("merge reads %d shard folders, the inspect job writes %d", len(shardDirs), n)
	}
	for i, d := range shardDirs {
		if want := strings.ReplaceAll(out, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(i)); path.Clean(d) != path.Clean(want) {
			t.Errorf("merge shard folder %d is %s, inspect writes %s", i, d, want)
		}
		v, _ := mountOf(t, mps, mc, d)
		if claimOf(mps, v) != claimOf(ps, outVol) {
			t.Errorf("merge reads %s from claim %s, inspect writes claim %s", d, claimOf(mps, v), claimOf(ps, outVol))
		}
	}
	mergedOut := flag(t, mc.Args, "--out")
	if _, ro := mountOf(t, mps, mc, mergedOut); ro {
		t.Error("the merge output is on a read-only mount")
	}
	// The init container waits for each shard's summary.json (written last).
	script := strings.Join(mps.InitContainers[0].Command, " ")
	loop := regexp.MustCompile(`for i in ([0-9 ]+);`).FindStringSubmatch(script)
	if loop == nil || !sameIndexes(loop[1], n) {
		t.Errorf("init container waits for shards %v, want 0..%d", loop, n-1)
	}
	if !strings.Contains(script, "summary.json") {
		t.Error("init container does not wait for the shards' summary.json")
	}
	if mj.Spec.ActiveDeadlineSeconds <= 0 {
		t.Error("the merge job has no deadline: it would wait forever for a failed shard")
	}
	for _, cc := range append(append([]container{}, mps.InitContainers...), mc) {
		if cc.Image != c.Image {
			t.Errorf("container %s runs %s, the inspect job %s", cc.Name, cc.Image, c.Image)
		}
	}
}

func sameIndexes(list string, n int) bool {
	f := strings.Fields(list)
	if len(f) != n {
		return false
	}
	for i, s := range f {
		if s != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

// TestDockerfile checks the image the manifest runs: headless build, the
// same ONNX Runtime as scripts/setup.sh, and the paths the manifest relies on.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	setup, err := os.ReadFile("../../scripts/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	d := string(df)
	for _, want := range []string{"-tags nogui", "CGO_ENABLED=1", `ENTRYPOINT ["workstation"]`,
		"XDG_DATA_HOME=/var/lib/dmad", "ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so.1", "USER 10001"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, key := range []string{"ORT_VERSION", "ORT_SHA256"} {
		re := regexp.MustCompile(`(?m)^(?:ARG )?` + key + `=(\S+)`)
		a, b := re.FindStringSubmatch(d), re.FindStringSubmatch(string(setup))
		if a == nil || b == nil || a[1] != b[1] {
			t.Errorf("%s: Dockerfile %v, scripts/setup.sh %v; they must match", key, a, b)
		}
	}
}
