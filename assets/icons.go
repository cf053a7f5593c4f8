package assets

import _ "embed"

// AppIcon is the application icon (SVG).
//
//go:embed icons/workstation.svg
var AppIcon []byte
