package proxy

import (
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the proxy sends
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeProtocolViolation  = "08P01"
	codeInvalidAuthSpec    = "28000"
	codeInvalidPassword    = "28P01"
	codeInvalidCatalogName = "3D000"
	codeTooManyConnections = "53300"
	codeCannotConnectNow   = "57P03"
	codeAdminShutdown      = "57P01"
	codeConnectionFailure  = "08006"
	codeFeatureNotSupp     = "0A000"
)

// Error is an error the proxy reports to a client as an ErrorResponse.
type Error struct {
	Code    string
	Message string
	Detail  string
	Hint    string
}

func (e *Error) Error() string { return e.Message + " (SQLSTATE " + e.Code + ")" }

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// errorResponse returns the message to send for err: a Postgres error
// from an instance passes through as it is, an *Error keeps its code,
// anything else becomes a connection failure without internal detail.
func errorResponse(err error) *pgproto3.ErrorResponse {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &pgproto3.ErrorResponse{
			Severity:            "FATAL",
			SeverityUnlocalized: "FATAL",
			Code:                pe.Code,
			Message:             pe.Message,
			Detail:              pe.Detail,
			Hint:                pe.Hint,
		}
	}

	e := &Error{Code: codeConnectionFailure, Message: "pgtide proxy: internal error"}
	errors.As(err, &e)

	return &pgproto3.ErrorResponse{
		Severity:            "FATAL",
		SeverityUnlocalized: "FATAL",
		Code:                e.Code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
	}
}

// sendError writes err to the client as an ErrorResponse, best effort.
func sendError(c net.Conn, err error) {
	buf, encErr := errorResponse(err).Encode(nil)
	if encErr == nil {
		_, _ = c.Write(buf)
	}
}

// sendNotice writes a NoticeResponse to the client.
func sendNotice(c net.Conn, msg string) error {
	buf, err := (&pgproto3.NoticeResponse{
		Severity:            "NOTICE",
		SeverityUnlocalized: "NOTICE",
		Code:                "00000",
		Message:             msg,
	}).Encode(nil)
	if err != nil {
		return err
	}

	_, err = c.Write(buf)

	return err
}
