package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// writeError writes err as a JSON error response.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	ge := asError(err)
	s.metrics.errors.WithLabelValues(ge.Code).Inc()
	if ge.Code == CodeInternal {
		s.logger.Error("request failed", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	if ge.Code == CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgtide"`)
	}
	w.WriteHeader(ge.HTTPStatus())
	json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{ge})
}

// identify authenticates the request.
func (s *Server) identify(r *http.Request) (*identity, error) {
	return s.auth.authenticate(bearer(r))
}

// cors wraps h with the configured CORS policy; preflight requests are
// answered here.
func (s *Server) cors(h http.Handler) http.Handler {
	if len(s.cfg.CORSOrigins) == 0 {
		return h
	}
	any := slices.Contains(s.cfg.CORSOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (any || slices.Contains(s.cfg.CORSOrigins, origin)) {
			hd := w.Header()
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Add("Vary", "Origin")
			hd.Set("Access-Control-Expose-Headers", "Content-Type")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				hd.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// handleChanges serves GET /v1/changes: SSE when the client accepts
// text/event-stream, a long poll otherwise.
func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		s.serveSSE(w, r)
		return
	}
	s.serveLongPoll(w, r)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
