package gateway

import (
	"errors"
	"fmt"
	"net/http"
)

// The error codes of the gateway. Every transport reports them the same
// way: in the JSON body {"error":{"code":…,"message":…}} of an HTTP
// response, in an "error" message on a WebSocket, in an "error" event of an
// SSE stream, and as the reason of a google.rpc.ErrorInfo on gRPC.
const (
	CodeBadRequest       = "bad_request"       // malformed request or message
	CodeInvalidCursor    = "invalid_cursor"    // a cursor that does not decode or match the log
	CodeCursorExpired    = "cursor_expired"    // the log no longer holds the cursor's position
	CodeInvalidOption    = "invalid_option"    // a subscription option is invalid
	CodeInvalidPredicate = "invalid_predicate" // the where predicate does not compile
	CodeUnknownSource    = "unknown_source"    // no log for this source
	CodeUnknownTable     = "unknown_table"     // the log holds no change of this table
	CodeUnauthorized     = "unauthorized"      // no or invalid credentials
	CodeForbidden        = "forbidden"         // credentials do not allow the request
	CodeSlowConsumer     = "slow_consumer"     // the client did not keep up
	CodeUnavailable      = "unavailable"       // the log or the gateway is not available
	CodeInternal         = "internal"          // a bug or an unexpected failure
)

// Error is an error the gateway reports to a client. Code is one of the
// Code constants; Cursor, when set, is where the client can resume.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Cursor  string `json:"cursor,omitempty"`
	err     error
}

// Error returns the code and the message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.err }

// HTTPStatus returns the HTTP status that goes with the error's code.
func (e *Error) HTTPStatus() int {
	switch e.Code {
	case CodeBadRequest, CodeInvalidCursor, CodeInvalidOption, CodeInvalidPredicate:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnknownSource, CodeUnknownTable:
		return http.StatusNotFound
	case CodeCursorExpired:
		return http.StatusGone
	case CodeSlowConsumer:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// errorf returns an *Error with the given code and message.
func errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), err: errors.Unwrap(err)}
}

// asError turns any error into an *Error, as internal unless it is one.
func asError(err error) *Error {
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	return &Error{Code: CodeInternal, Message: err.Error(), err: err}
}
