// Package ort wraps ONNX Runtime (github.com/yalue/onnxruntime_go) for the
// workstation: it finds and loads the shared library once, chooses an
// execution provider (CPU, CUDA, DirectML) with a CPU fallback, and runs
// sessions built from in-memory ONNX models on plain Go slices.
//
// All heavy tensor work in the workstation goes through a [Runtime].
package ort

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Device names an execution provider choice as given on the command line.
type Device string

// Device choices. DeviceAuto tries the GPU providers and falls back to the CPU.
const (
	DeviceAuto     Device = "auto"
	DeviceCPU      Device = "cpu"
	DeviceCUDA     Device = "cuda"
	DeviceDirectML Device = "directml"
	// DeviceWebGPU is ONNX Runtime's WebGPU provider (Dawn: Vulkan on Linux,
	// D3D12 on Windows), compiled into the npm core library. It is never
	// chosen by auto: ask for it by name.
	DeviceWebGPU Device = "webgpu"
)

// ParseDevice checks a --device value.
func ParseDevice(s string) (Device, error) {
	switch d := Device(strings.ToLower(strings.TrimSpace(s))); d {
	case "", DeviceAuto:
		return DeviceAuto, nil
	case DeviceCPU, DeviceCUDA, DeviceDirectML, DeviceWebGPU:
		return d, nil
	}
	return "", fmt.Errorf("unknown device %q (want auto, cpu, cuda, directml or webgpu)", s)
}

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_LIB"

// Options configure a Runtime.
type Options struct {
	// LibraryPath is the ONNX Runtime shared library. Empty: $ONNXRUNTIME_LIB,
	// then the library beside the executable, then
	// third_party/onnxruntime/<os>-<arch>/ beside the executable or in the
	// working directory and its parents (see [FindLibrary]).
	LibraryPath string
	// Threads is the intra-op thread count; 0 means one per CPU core.
	Threads int
	// Device selects the execution provider.
	Device Device
	// Logger receives the one line saying which provider is used; nil uses slog.Default.
	Logger *slog.Logger
}

// Runtime is an initialised ONNX Runtime with a chosen execution provider.
// It is safe for concurrent use; sessions it creates are not.
type Runtime struct {
	libPath string
	threads int
	log     *slog.Logger
	// auto is set when the provider was chosen by DeviceAuto: a GPU that
	// then fails to build or run a graph gives way to the CPU (see
	// fallBack) instead of failing the job, as a GPU the user asked for by
	// name does.
	auto bool

	mu       sync.Mutex
	provider Device // the provider actually in use
}

// The onnxruntime_go environment is process-global; env guards it so that
// several Runtimes (tests, GUI and CLI in one process) share one environment.
var env struct {
	sync.Mutex
	libPath string
	loaded  bool
	refs    int
}

// Open loads the library (once per process) and picks the provider.
//
// With Device cuda and no library named (flag or $ONNXRUNTIME_LIB), the CUDA
// build is preferred where `make gpu-runtime` put it: a folder named like the
// CPU library's with "-gpu" appended (third_party/onnxruntime/linux-x64-gpu),
// or gpu/ inside it (a bundle).
func Open(opts Options) (*Runtime, error) {
	lib, err := FindLibrary(opts.LibraryPath)
	if err != nil {
		return nil, err
	}
	if opts.Device == DeviceCUDA && opts.LibraryPath == "" && os.Getenv(LibraryEnv) == "" {
		lib = preferGPUBuild(lib)
	}
	env.Lock()
	defer env.Unlock()
	if !env.loaded {
		onnx.SetSharedLibraryPath(lib)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("initialise ONNX Runtime from %s: %w", lib, err)
		}
		_ = onnx.DisableTelemetry()
		env.libPath = lib
		env.loaded = true
	} else if env.libPath != lib {
		slog.Warn("ONNX Runtime already loaded from another path; reusing it", "loaded", env.libPath, "asked", lib)
	}
	env.refs++
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dev := opts.Device
	if dev == "" {
		dev = DeviceAuto
	}
	r := &Runtime{libPath: env.libPath, threads: threads, log: log, auto: dev == DeviceAuto}
	r.provider, err = r.chooseProvider(dev, log)
	if err != nil {
		env.refs--
		return nil, err
	}
	return r, nil
}

// Close releases this Runtime's hold on the process-wide environment.
func (r *Runtime) Close() error {
	env.Lock()
	defer env.Unlock()
	if r == nil || env.refs == 0 {
		return nil
	}
	env.refs--
	// The environment stays loaded: onnxruntime cannot be re-initialised
	// reliably in one process, and the library stays mapped anyway.
	return nil
}

// Provider reports the execution provider in use: cpu, cuda, directml or
// webgpu. With DeviceAuto it turns to cpu when the GPU fails a graph.
func (r *Runtime) Provider() Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.provider
}

// mayFallBack reports whether a failure of provider d may be retried on
// the CPU: only where the Runtime chose d by itself (DeviceAuto). A GPU the
// user asked for by name fails the job with the GPU's error.
func (r *Runtime) mayFallBack(d Device) bool { return r.auto && d != DeviceCPU }

// fallBack moves the Runtime to the CPU for good once a graph that failed
// on GPU provider d has run on the CPU: a GPU whose driver fails one graph
// is not trusted with the next, and half a job on each would make results
// depend on which graph failed.
func (r *Runtime) fallBack(d Device, what string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.provider != DeviceCPU {
		r.log.Warn("the GPU failed a graph that the CPU runs; using the CPU from now on", "device", d, "failed", what, "err", err)
		r.provider = DeviceCPU
	}
}

// Threads reports the intra-op thread count.
func (r *Runtime) Threads() int { return r.threads }

// LibraryPath reports where the shared library was loaded from.
func (r *Runtime) LibraryPath() string { return r.libPath }

// Version reports the ONNX Runtime version string.
func (r *Runtime) Version() string { return onnx.GetVersion() }

func (r *Runtime) chooseProvider(want Device, log *slog.Logger) (Device, error) {
	try := func(d Device) error {
		opts, err := r.sessionOptions(d)
		if err != nil {
			return err
		}
		return opts.Destroy()
	}
	switch want {
	case DeviceCPU:
		return DeviceCPU, nil
	case DeviceCUDA, DeviceDirectML, DeviceWebGPU:
		if err := try(want); err != nil {
			return "", fmt.Errorf("device %s: %w", want, err)
		}
		log.Info("ONNX Runtime provider", "device", want)
		return want, nil
	}
	var reasons []string
	for _, d := range gpuCandidates() {
		err := try(d)
		if err == nil {
			log.Info("ONNX Runtime provider", "device", d)
			return d, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", d, err))
	}
	log.Info("no GPU provider loaded; using CPU", "tried", strings.Join(reasons, "; "))
	return DeviceCPU, nil
}

func gpuCandidates() []Device {
	if runtime.GOOS == "windows" {
		return []Device{DeviceCUDA, DeviceDirectML}
	}
	return []Device{DeviceCUDA}
}

// sessionOptions builds options for provider d. For CUDA it first checks that
// the provider library sits beside the core library, because ONNX Runtime
// otherwise fails late and with a vague message.
func (r *Runtime) sessionOptions(d Device) (*onnx.SessionOptions, error) {
	o, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	fail := func(err error) (*onnx.SessionOptions, error) { o.Destroy(); return nil, err }
	if err := o.SetIntraOpNumThreads(r.threads); err != nil {
		return fail(err)
	}
	if err := o.SetInterOpNumThreads(1); err != nil {
		return fail(err)
	}
	// The intra-op threads sleep between runs instead of spinning: the
	// workstation does Go work between runs (decoding images, re-ranking
	// search candidates, gathering bank rows for the mapper), which spinning
	// threads starved of the cores. Measured with spinning off: encoding
	// 15.0 vs 16.6 ms per image (BenchmarkEncodeMobileNetV2Batch8), the
	// benchmark's unsupervised fast scoring 24.9 vs 43.4 ms per image.
	if err := o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return fail(fmt.Errorf("session options: %w", err))
	}
	switch d {
	case DeviceCUDA:
		p := filepath.Join(filepath.Dir(r.libPath), cudaProviderName())
		if _, err := os.Stat(p); err != nil {
			return fail(fmt.Errorf("CUDA provider library %s not found: in a source tree run 'make gpu-runtime'; with a download, copy that runtime's folder (linux-x64-gpu) to gpu/ beside the program; or point $%s at an ONNX Runtime that has the provider beside it", p, LibraryEnv))
		}
		cu, err := onnx.NewCUDAProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("CUDA provider options: %w", err))
		}
		defer cu.Destroy()
		if err := o.AppendExecutionProviderCUDA(cu); err != nil {
			return fail(fmt.Errorf("CUDA provider %s does not load (%w): %s", p, err, cudaNeeds))
		}
	case DeviceWebGPU:
		if err := o.AppendExecutionProvider("WebGPU", map[string]string{}); err != nil {
			return fail(fmt.Errorf("WebGPU provider (not in this ONNX Runtime build, or no Vulkan/D3D12 GPU): %w", err))
		}
	case DeviceDirectML:
		if runtime.GOOS != "windows" {
			return fail(errors.New("DirectML is only available on Windows"))
		}
		if err := o.AppendExecutionProviderDirectML(0); err != nil {
			return fail(fmt.Errorf("DirectML provider: %w", err))
		}
	}
	return o, nil
}

// preferGPUBuild returns the CUDA build of ONNX Runtime that sits next to
// the CPU library lib, or lib when there is none.
func preferGPUBuild(lib string) string {
	dir, file := filepath.Split(lib)
	dir = filepath.Clean(dir)
	for _, d := range []string{dir + "-gpu", filepath.Join(dir, "gpu")} {
		if _, err := os.Stat(filepath.Join(d, cudaProviderName())); err == nil {
			if _, err := os.Stat(filepath.Join(d, file)); err == nil {
				return filepath.Join(d, file)
			}
		}
	}
	return lib
}

func cudaProviderName() string {
	if runtime.GOOS == "windows" {
		return "onnxruntime_providers_cuda.dll"
	}
	return "libonnxruntime_providers_cuda.so"
}

// cudaNeeds says in one line what the CUDA provider of `make gpu-runtime`
// (ONNX Runtime 1.29.0) needs on the machine.
const cudaNeeds = "the CUDA provider (ONNX Runtime 1.29) needs an NVIDIA driver, the CUDA 13 runtime libraries " +
	"(libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcufft.so.12) and cuDNN 9 on the library path"

// libraryName is the platform's file name of the shared library.
func libraryName() (dir, file string) {
	switch runtime.GOOS {
	case "windows":
		return "win-x64", "onnxruntime.dll"
	case "darwin":
		return "darwin-" + runtime.GOARCH, "libonnxruntime.dylib"
	}
	arch := "x64"
	if runtime.GOARCH == "arm64" {
		arch = "arm64"
	}
	return "linux-" + arch, "libonnxruntime.so.1"
}

// FindLibrary resolves the ONNX Runtime shared library: the explicit path,
// then $ONNXRUNTIME_LIB, then the library beside the executable (an unpacked
// bundle: workstation + libonnxruntime.so.1 / onnxruntime.dll in one folder),
// then third_party/onnxruntime/<os>-<arch>/ beside the executable or in the
// working directory or one of its parents (the developer tree). The explicit
// choices come first so that a user can point a bundle at another runtime
// (the GPU one). The error lists every place it looked.
func FindLibrary(explicit string) (string, error) {
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real // a symlink in ~/bin still finds the bundle's folder
		}
		exeDir = filepath.Dir(exe)
	}
	wd, _ := os.Getwd()
	return findLibrary(explicit, os.Getenv(LibraryEnv), exeDir, wd)
}

func findLibrary(explicit, fromEnv, exeDir, wd string) (string, error) {
	var looked []string
	check := func(p string) bool {
		looked = append(looked, p)
		st, err := os.Stat(p)
		return err == nil && !st.IsDir()
	}
	if explicit != "" {
		if check(explicit) {
			return explicit, nil
		}
		return "", fmt.Errorf("ONNX Runtime library %s not found", explicit)
	}
	if fromEnv != "" {
		if check(fromEnv) {
			return fromEnv, nil
		}
		return "", fmt.Errorf("ONNX Runtime library %s (from $%s) not found", fromEnv, LibraryEnv)
	}
	sub, file := libraryName()
	if exeDir != "" {
		if p := filepath.Join(exeDir, file); check(p) {
			return p, nil
		}
	}
	rel := filepath.Join("third_party", "onnxruntime", sub, file)
	var roots []string
	if exeDir != "" {
		roots = append(roots, exeDir, filepath.Dir(exeDir))
	}
	if wd != "" {
		for d := wd; ; d = filepath.Dir(d) {
			roots = append(roots, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, root := range roots {
		if p := filepath.Join(root, rel); check(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("ONNX Runtime library not found; looked in: %s (put %s beside the program, run `make setup` in a source tree, pass --ort-lib, or set $%s)",
		strings.Join(looked, ", "), file, LibraryEnv)
}
