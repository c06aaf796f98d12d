package web

// convBackend is the backend's conversation part, or nil.
func (s *Server) convBackend() any { return nil }

// convRoutes registers the conversation API.
func (s *Server) convRoutes() {}
