package recourse

import (
	"errors"
	"fmt"
)

// Error codes. They are the only error vocabulary shared by the service, the
// web layer and the CLI; the web layer maps each to an HTTP status in exactly
// one table.
const (
	ECONFLICT     = "conflict"       // the resource changed or already exists
	EINTERNAL     = "internal"       // a bug or an unavailable dependency; never shown in detail
	EINVALID      = "invalid"        // the input failed validation
	ENOTFOUND     = "not_found"      // the resource does not exist (or the caller may not know it does)
	EUNAUTHORIZED = "unauthorized"   // the caller is not signed in, or sign-in failed
	EFORBIDDEN    = "forbidden"      // the caller is signed in but may not do this
	ERATELIMIT    = "rate_limited"   // too many attempts; try later
	ESTEPUP       = "step_up_needed" // a fresher or stronger authentication is needed first
)

// Error is the domain error. Message is safe to show to the person who caused
// it: it never holds a secret, an internal detail, or a hint that would reveal
// whether an account exists.
type Error struct {
	Code    string
	Message string
	// Field names the input field at fault, when there is one.
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("recourse: %s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("recourse: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID error that names the offending field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the safe message of the first *Error in err's chain, or
// a generic message for any other error, so internal detail never leaks.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}

// Sentinel errors returned by stores. Services translate them into errors
// suited to the caller; they compare with errors.Is.
var (
	ErrNotFound = &Error{Code: ENOTFOUND, Message: "Not found."}
	ErrConflict = &Error{Code: ECONFLICT, Message: "The resource was changed or already exists."}
)
