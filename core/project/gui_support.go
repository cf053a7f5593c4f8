package project

import (
	"log/slog"

	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/storage"
)

// NewSession attaches the engine to a project file the caller has already
// opened or created (for example with storage.Create and a display name).
// Close closes p.
func NewSession(p *storage.Project, rt *ort.Runtime, log *slog.Logger) *Session {
	if log == nil {
		log = slog.Default()
	}
	return &Session{Store: p, rt: rt, log: log}
}

// SetRuntime makes rt the runtime of every later engine call (for example
// when the user switches between CPU and GPU); the encoder is rebuilt on
// next use. The previous runtime is not closed.
func (s *Session) SetRuntime(rt *ort.Runtime) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rt == rt {
		return
	}
	if s.enc != nil {
		s.enc.Close()
		s.enc = nil
	}
	s.rt = rt
}
