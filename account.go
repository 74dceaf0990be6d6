package recourse

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// AccountKind says whether an account belongs to a person or is a
// non-human identity owned by people.
type AccountKind string

const (
	KindHuman   AccountKind = "human"
	KindService AccountKind = "service"
)

// AccountStatus is the lifecycle state of an account. Only active accounts may
// sign in or self-serve; terminated accounts are refused everything.
type AccountStatus string

const (
	StatusActive     AccountStatus = "active"
	StatusSuspended  AccountStatus = "suspended"
	StatusTerminated AccountStatus = "terminated"
)

// Employment is the relation of the account's holder to the organisation.
type Employment string

const (
	EmploymentEmployee   Employment = "employee"
	EmploymentContractor Employment = "contractor"
	EmploymentThirdParty Employment = "third_party"
)

// Account is a directory entry: a person or a service identity, with the
// facts that policy decisions rest on. Channels and recovery contacts are
// loaded with it.
type Account struct {
	ID          string
	Username    string
	DisplayName string
	Kind        AccountKind
	Status      AccountStatus
	Employment  Employment
	// ContractEnd is when a contractor's or third party's access ends; nil
	// when open-ended.
	ContractEnd *time.Time
	ManagerID   string
	SponsorID   string
	// Owners are the accounts responsible for a service account.
	Owners []string
	Groups []string
	// IAL is the identity assurance level (1–3) reached at proofing.
	IAL int
	// Roles grant access to Recourse itself: "admin", "helpdesk", "security".
	Roles []string

	Emails           []Channel
	Phones           []Channel
	RecoveryContacts []string

	// FailedSignIns is the consecutive failed sign-in count; the account is
	// locked when it reaches the configured bound.
	FailedSignIns int
	LockedAt      *time.Time
	// RecoveryFailures counts wrong recovery codes since the last completed
	// recovery; FrozenAt, when set, stops sign-in and recovery until the
	// security team lifts it (after a "this wasn't me" report).
	RecoveryFailures int
	FrozenAt         *time.Time

	CreatedAt time.Time
	UpdatedAt time.Time
	// Version increases on every update; it guards read-modify-write races.
	Version int64
}

// Roles that grant access to Recourse's own consoles.
const (
	RoleAdmin    = "admin"
	RoleHelpdesk = "helpdesk"
	RoleSecurity = "security"
)

// HasRole reports whether the account holds the Recourse role.
func (a *Account) HasRole(role string) bool { return slices.Contains(a.Roles, role) }

// InGroup reports whether the account is a member of the directory group.
func (a *Account) InGroup(group string) bool { return slices.Contains(a.Groups, group) }

// Locked reports whether sign-in is refused because of too many failures.
func (a *Account) Locked() bool { return a.LockedAt != nil }

var (
	reUsername = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,127}$`)
	reID       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	reGroup    = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,63}$`)
)

// ValidID reports whether s is an acceptable account id.
func ValidID(s string) bool { return reID.MatchString(s) }

// NormalizeUsername lowercases and trims a username or sign-in identifier.
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Validate checks the account's own fields. References to other accounts
// (manager, sponsor, owners, recovery contacts) are checked by the service,
// which can see the directory.
func (a *Account) Validate() error {
	if !reID.MatchString(a.ID) {
		return FieldError("id", "must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if !reUsername.MatchString(a.Username) {
		return FieldError("username", "must be 1–128 lowercase letters, digits, '.', '_', '@' or '-'")
	}
	if a.DisplayName == "" || utf8.RuneCountInString(a.DisplayName) > 200 || !utf8.ValidString(a.DisplayName) || strings.ContainsAny(a.DisplayName, "\x00\r\n") {
		return FieldError("display_name", "is required, at most 200 characters, on one line")
	}
	switch a.Kind {
	case KindHuman, KindService:
	default:
		return FieldError("kind", "must be %q or %q", KindHuman, KindService)
	}
	switch a.Status {
	case StatusActive, StatusSuspended, StatusTerminated:
	default:
		return FieldError("status", "must be %q, %q or %q", StatusActive, StatusSuspended, StatusTerminated)
	}
	switch a.Employment {
	case EmploymentEmployee, EmploymentContractor, EmploymentThirdParty:
	default:
		return FieldError("employment", "must be %q, %q or %q", EmploymentEmployee, EmploymentContractor, EmploymentThirdParty)
	}
	if a.IAL < 1 || a.IAL > 3 {
		return FieldError("ial", "must be 1, 2 or 3")
	}
	if a.Kind == KindService && len(a.Owners) == 0 {
		return FieldError("owners", "a service account needs at least one owner")
	}
	if a.Kind == KindHuman && len(a.Owners) > 0 {
		return FieldError("owners", "only service accounts have owners")
	}
	if a.Employment != EmploymentEmployee && a.Kind == KindHuman && a.SponsorID == "" {
		return FieldError("sponsor", "a contractor or third party needs a sponsor")
	}
	for _, ref := range []struct{ field, id string }{{"manager", a.ManagerID}, {"sponsor", a.SponsorID}} {
		if ref.id == "" {
			continue
		}
		if !reID.MatchString(ref.id) {
			return FieldError(ref.field, "is not a valid account id")
		}
		if ref.id == a.ID {
			return FieldError(ref.field, "cannot be the account itself")
		}
	}
	for _, list := range []struct {
		field string
		ids   []string
	}{{"owners", a.Owners}, {"recovery_contacts", a.RecoveryContacts}} {
		seen := map[string]bool{}
		for _, id := range list.ids {
			if !reID.MatchString(id) {
				return FieldError(list.field, "%q is not a valid account id", id)
			}
			if id == a.ID {
				return FieldError(list.field, "cannot include the account itself")
			}
			if seen[id] {
				return FieldError(list.field, "lists %q twice", id)
			}
			seen[id] = true
		}
	}
	if len(a.Groups) > 100 || len(a.Roles) > 10 || len(a.Owners) > 20 {
		return FieldError("groups", "at most 100 groups, 10 roles and 20 owners")
	}
	if len(a.RecoveryContacts) > 10 {
		return FieldError("recovery_contacts", "at most 10")
	}
	for _, g := range a.Groups {
		if !reGroup.MatchString(g) {
			return FieldError("groups", "%q must be lowercase letters, digits, '.', '_', ':' or '-'", g)
		}
	}
	for _, r := range a.Roles {
		switch r {
		case RoleAdmin, RoleHelpdesk, RoleSecurity:
		default:
			return FieldError("roles", "%q is not a role (admin, helpdesk, security)", r)
		}
	}
	seen := map[string]bool{}
	for _, c := range a.Emails {
		if c.Kind != ChannelEmail {
			return FieldError("emails", "holds a channel that is not an email address")
		}
		if err := ValidateChannelAddress(c.Kind, c.Address); err != nil {
			return err
		}
		if seen[c.Address] {
			return FieldError("emails", "lists %q twice", c.Address)
		}
		seen[c.Address] = true
	}
	for _, c := range a.Phones {
		if c.Kind != ChannelPhone {
			return FieldError("phones", "holds a channel that is not a phone number")
		}
		if err := ValidateChannelAddress(c.Kind, c.Address); err != nil {
			return err
		}
		if seen[c.Address] {
			return FieldError("phones", "lists %q twice", c.Address)
		}
		seen[c.Address] = true
	}
	return nil
}
