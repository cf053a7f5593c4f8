// Package progress is the one vocabulary of long-running work: a typed
// Stage, an Event, and Func, the callback every engine loop reports to.
// Producers (core/train, core/pipeline, core/project) and consumers (the
// CLI's progress bar, the desktop application's tracker) share the
// constants, so renaming a stage cannot silently stop a progress bar.
package progress

// Stage names one step of a job. Its value is the short name the CLI prints
// and training logs store (so logs written before this type stay readable).
type Stage string

// The stages of the engine's jobs, in the order a training run meets them.
const (
	Import      Stage = "import"       // reading a dataset into a project
	Features    Stage = "features"     // encoding images to patch features
	Synthetic   Stage = "synthetic"    // synthetic defects for the OOD bank
	Bank        Stage = "bank"         // the normal coreset M_n
	AnomalyBank Stage = "anomaly-bank" // the anomaly bank M_a
	Knowledge   Stage = "knowledge"    // dual-bank knowledge of training patches
	Train       Stage = "train"        // mapper training steps
	Threshold   Stage = "threshold"    // scoring normal images for the threshold
	Save        Stage = "save"         // storing the model
	Score       Stage = "score"        // scoring images
	Report      Stage = "report"       // writing an inspection report
	// CheckImages re-hashes a project's image files to find changed or
	// missing ones, and CheckDataset checks a dataset's files as it is
	// opened; they belong to no job, so no bar lists them in advance.
	CheckImages  Stage = "check-images"
	CheckDataset Stage = "check-dataset"
	// Download fetches a backbone; Done and Total count bytes (Total is -1
	// when the server does not say).
	Download Stage = "download"
)

// TrainStages are the stages of a project's training job, in order;
// ScoreStages those of evaluation and inspection.
var (
	TrainStages = []Stage{Features, Synthetic, Bank, AnomalyBank, Knowledge, Train, Threshold, Save}
	ScoreStages = []Stage{Features, Score}
)

// String returns the stage's name.
func (s Stage) String() string { return string(s) }

// Event reports progress: Done of Total units of Stage. Training events
// also carry the epoch and the loss terms. The field names are those of the
// training logs stored in projects.
type Event struct {
	Stage       Stage
	Done, Total int
	// Run names the benchmark run an event belongs to (empty elsewhere).
	Run string `json:",omitempty"`
	// Training details (Stage Train): 1-based epoch, the step's loss, and
	// the fraction of the step's normal patches with Ψ > m, of
	// pseudo-negatives with Ψ < −m and of seen anomalies with Ψ < −m.
	Epoch, Epochs                    int
	Loss                             float64
	NormalAbove, NegBelow, AnomBelow float64
}

// Func receives events. A nil Func discards them.
type Func func(Event)

// Send reports e (nothing for a nil f).
func (f Func) Send(e Event) {
	if f != nil {
		f(e)
	}
}
