// Package recourse holds the domain of Recourse, a service that takes account
// self-service and recovery off the help desk without lowering assurance:
// accounts, authenticators, channels, sessions, the errors shared by every
// layer, the Store interface that the storage backends implement, and the
// Clock that makes time testable.
//
// The package imports none of the others; the service layer (package service)
// holds the business rules, the stores (package store/...) only persist, and
// the web and CLI layers call the service.
package recourse

import (
	"time"
)

// Clock tells the time. Tests inject a fixed or stepping clock; production
// uses SystemClock.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock, in UTC.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
