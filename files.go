package workstation

// File name extensions. A project and an exported model used to share
// ".dmad"; they now have their own, and files named the old way still open
// and import: the workstation tells them apart by content, not by name.
const (
	// ProjectExt names a project file.
	ProjectExt = ".dmadproj"
	// ModelExt names a model file written by `workstation export-model`.
	ModelExt = ".dmadmodel"
	// LegacyExt is what both were named before.
	LegacyExt = ".dmad"
)
