package web

// features lists the parts of the console this agent serves: "pair",
// "devices" and "friends" always; "conv" and "archive" when the backend
// keeps conversations and archives.
func (s *Server) features() []string {
	f := []string{"pair", "devices", "friends"}
	if s.convBackend() != nil {
		f = append(f, "conv")
	}
	if s.archiveBackend() != nil {
		f = append(f, "archive")
	}
	return f
}
