package recourse

import "time"

// Authentication assurance levels (NIST SP 800-63B-4). AALNone marks a
// session that has passed the password step but still owes a second factor.
const (
	AALNone = 0
	AAL1    = 1
	AAL2    = 2
	AAL3    = 3
)

// Session is a server-side sign-in. The bearer secret lives only in the
// holder's cookie; the store keeps its hash.
type Session struct {
	ID        string
	AccountID string
	TokenHash []byte
	// AAL is the assurance level actually proven; AALNone while the second
	// factor is outstanding.
	AAL int
	// Methods lists the authentication methods used (RFC 8176 AMR values:
	// "pwd", "otp", "hwk", "swk").
	Methods []string
	// AuthTime is when the holder first authenticated; ReauthAt the last time
	// they proved an authenticator again (step-up).
	AuthTime   time.Time
	ReauthAt   time.Time
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute end; IdleTimeout ends the session early when
	// LastSeenAt is older than it.
	ExpiresAt   time.Time
	IdleTimeout time.Duration
	IP          string
	UserAgent   string
	RevokedAt   *time.Time
	// Restricted marks a session that came out of a recovery and may do
	// nothing but enrol a new authenticator.
	Restricted bool
	// Ceremony holds the state of an unfinished WebAuthn ceremony.
	Ceremony []byte
}

// Active reports whether the session may be used at now.
func (s *Session) Active(now time.Time) bool {
	if s.RevokedAt != nil || !now.Before(s.ExpiresAt) {
		return false
	}
	if s.IdleTimeout > 0 && !now.Before(s.LastSeenAt.Add(s.IdleTimeout)) {
		return false
	}
	return true
}

// OutboxMessage is a mail stored for display instead of being sent, when no
// SMTP server is configured (development and demo).
type OutboxMessage struct {
	ID        string
	AccountID string
	To        string
	Subject   string
	Body      string
	CreatedAt time.Time
}
