package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// The error kinds shared by every package, in one place, so that callers
// (ErrorResponse below above all) classify errors with errors.Is without
// importing the package that produced them. Packages declare their own
// sentinels of these kinds with NewKind.
var (
	// ErrInvalid classifies every validation failure: errors.Is(err,
	// ErrInvalid) holds for a *FieldError.
	ErrInvalid     = errors.New("api: invalid input")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("unavailable")
	// ErrUnprocessable is a well-formed request the system could not carry
	// out (a checkpoint CRIU refused, a migration that failed).
	ErrUnprocessable = errors.New("unprocessable")
	// ErrUnauthorized is a request without the right API token.
	ErrUnauthorized = errors.New("unauthorized: a valid bearer token is required")
	// ErrUnknownPeer is a command for a role or worker that is not connected
	// to the bus (yet): sending it again later may work. The bus returns it,
	// and callers test for it without importing the bus.
	ErrUnknownPeer = NewKind("bus: no such peer connected", ErrUnavailable)
)

// ErrorBody is the JSON every error response carries:
// {"error": {"code": "...", "message": "...", "field": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ErrorResponse is the one place where an error becomes an HTTP status and
// body: bad input 400, unauthorized 401, not found 404, conflict 409,
// unavailable 503, anything else 500.
func ErrorResponse(err error) (int, ErrorBody) {
	b := ErrorBody{Error: ErrorDetail{Message: err.Error()}}
	var fe *FieldError
	switch {
	case errors.As(err, &fe) && fe.Kind == ErrConflict:
		b.Error.Code, b.Error.Field, b.Error.Message = "conflict", fe.Field, fe.Error()
		return http.StatusConflict, b
	case errors.As(err, &fe) && fe.Kind == ErrNotFound:
		b.Error.Code, b.Error.Field, b.Error.Message = "not_found", fe.Field, fe.Error()
		return http.StatusNotFound, b
	case errors.As(err, &fe) && fe.Kind == nil:
		b.Error.Code, b.Error.Field, b.Error.Message = "invalid", fe.Field, fe.Error()
		return http.StatusBadRequest, b
	case errors.Is(err, ErrInvalid):
		b.Error.Code = "invalid"
		return http.StatusBadRequest, b
	case errors.Is(err, ErrUnauthorized):
		b.Error.Code = "unauthorized"
		return http.StatusUnauthorized, b
	case errors.Is(err, ErrNotFound):
		b.Error.Code = "not_found"
		return http.StatusNotFound, b
	case errors.Is(err, ErrConflict):
		b.Error.Code = "conflict"
		return http.StatusConflict, b
	case errors.Is(err, ErrUnprocessable):
		b.Error.Code = "unprocessable"
		return http.StatusUnprocessableEntity, b
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		b.Error.Code = "unavailable"
		return http.StatusServiceUnavailable, b
	}
	b.Error.Code = "internal"
	return http.StatusInternalServerError, b
}

// StatusError is an error a server answered with, rebuilt by the client so
// that errors.Is still classifies it (ErrNotFound for a 404, and so on).
type StatusError struct {
	Status int
	Detail ErrorDetail
}

// Error is the server's message, and the field it names when the message
// does not already start with it: "job_info.tasks.t1.req_cores: must be at
// least 1", "no job named \"x\"".
func (e *StatusError) Error() string {
	msg := e.Detail.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if f := e.Detail.Field; f != "" && !strings.HasPrefix(msg, f) {
		msg += " (field " + f + ")"
	}
	return msg
}

// Is maps the status back to the error kinds.
func (e *StatusError) Is(target error) bool {
	switch e.Status {
	case http.StatusBadRequest:
		return target == ErrInvalid
	case http.StatusUnprocessableEntity:
		return target == ErrUnprocessable
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return target == ErrUnavailable
	}
	return false
}

// NewKind returns a sentinel error with message msg that errors.Is also
// classifies as kind (ErrNotFound, ErrConflict, ...). Packages declare
// their own sentinels with it, prefixed with their name.
func NewKind(msg string, kind error) error { return &kindError{msg: msg, kind: kind} }

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
