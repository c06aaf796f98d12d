package web

// archiveBackend is the backend's archive part, or nil: no archive control
// API exists yet, and the console's archive section says so.
func (s *Server) archiveBackend() any { return nil }

// archiveRoutes registers the archive API.
func (s *Server) archiveRoutes() {}
