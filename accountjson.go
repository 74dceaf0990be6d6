package recourse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// AccountJSON is the one documented JSON shape of an account and its
// directory facts (docs/accounts.md). `recourse account import` reads it,
// `recourse account list --json` writes it, and policy tools read it.
type AccountJSON struct {
	ID               string        `json:"id"`
	Username         string        `json:"username"`
	DisplayName      string        `json:"display_name"`
	Kind             AccountKind   `json:"kind,omitempty"`
	Status           AccountStatus `json:"status,omitempty"`
	Employment       Employment    `json:"employment,omitempty"`
	ContractEnd      *time.Time    `json:"contract_end,omitempty"`
	Manager          string        `json:"manager,omitempty"`
	Sponsor          string        `json:"sponsor,omitempty"`
	Owners           []string      `json:"owners,omitempty"`
	Groups           []string      `json:"groups,omitempty"`
	Roles            []string      `json:"roles,omitempty"`
	IAL              int           `json:"ial,omitempty"`
	Emails           []EmailJSON   `json:"emails,omitempty"`
	Phones           []PhoneJSON   `json:"phones,omitempty"`
	RecoveryContacts []string      `json:"recovery_contacts,omitempty"`
}

// EmailJSON is an email channel in AccountJSON.
type EmailJSON struct {
	Address  string `json:"address"`
	Verified bool   `json:"verified"`
}

// PhoneJSON is a phone channel in AccountJSON.
type PhoneJSON struct {
	Number   string `json:"number"`
	Verified bool   `json:"verified"`
}

// ToJSON converts an account to its JSON shape.
func (a *Account) ToJSON() AccountJSON {
	j := AccountJSON{
		ID: a.ID, Username: a.Username, DisplayName: a.DisplayName, Kind: a.Kind, Status: a.Status,
		Employment: a.Employment, ContractEnd: a.ContractEnd, Manager: a.ManagerID, Sponsor: a.SponsorID,
		Owners: a.Owners, Groups: a.Groups, Roles: a.Roles, IAL: a.IAL, RecoveryContacts: a.RecoveryContacts,
	}
	for _, c := range a.Emails {
		j.Emails = append(j.Emails, EmailJSON{Address: c.Address, Verified: c.Verified})
	}
	for _, c := range a.Phones {
		j.Phones = append(j.Phones, PhoneJSON{Number: c.Address, Verified: c.Verified})
	}
	return j
}

// Account converts the JSON shape to an account, applying defaults (human,
// active, employee, IAL 1) and normalising names and addresses. It does not
// validate; call Validate.
func (j AccountJSON) Account() *Account {
	a := &Account{
		ID: strings.TrimSpace(j.ID), Username: NormalizeUsername(j.Username), DisplayName: strings.TrimSpace(j.DisplayName),
		Kind: j.Kind, Status: j.Status, Employment: j.Employment, ManagerID: j.Manager, SponsorID: j.Sponsor,
		Owners: j.Owners, Groups: j.Groups, Roles: j.Roles, IAL: j.IAL, RecoveryContacts: j.RecoveryContacts,
	}
	if a.Kind == "" {
		a.Kind = KindHuman
	}
	if a.Status == "" {
		a.Status = StatusActive
	}
	if a.Employment == "" {
		a.Employment = EmploymentEmployee
	}
	if a.IAL == 0 {
		a.IAL = 1
	}
	if j.ContractEnd != nil {
		t := j.ContractEnd.UTC()
		a.ContractEnd = &t
	}
	for _, e := range j.Emails {
		a.Emails = append(a.Emails, Channel{Kind: ChannelEmail, Address: NormalizeChannelAddress(ChannelEmail, e.Address), Verified: e.Verified})
	}
	for _, p := range j.Phones {
		a.Phones = append(a.Phones, Channel{Kind: ChannelPhone, Address: NormalizeChannelAddress(ChannelPhone, p.Number), Verified: p.Verified})
	}
	return a
}

// MaxAccountJSONLine bounds one account record, so a hostile file cannot
// exhaust memory on a single value.
const MaxAccountJSONLine = 1 << 20

// ImportError locates a problem in an import file.
type ImportError struct {
	Line int
	Err  error
}

func (e *ImportError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *ImportError) Unwrap() error { return e.Err }

// ParseAccounts reads accounts in the JSON shape, either as one JSON array or
// as JSON lines (one object per line; blank lines ignored). Unknown fields
// are refused, every account is validated, and duplicate ids or usernames
// within the file are refused. Errors are *ImportError with the line number.
func ParseAccounts(r io.Reader) ([]*Account, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, line, err := skipSpace(br)
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Account
	var lines []int
	if first == '[' {
		out, lines, err = parseArray(br, line)
	} else {
		out, lines, err = parseLines(br, line)
	}
	if err != nil {
		return nil, err
	}
	ids, names := map[string]int{}, map[string]int{}
	for i, a := range out {
		if err := a.Validate(); err != nil {
			return nil, &ImportError{Line: lines[i], Err: err}
		}
		if l, dup := ids[a.ID]; dup {
			return nil, &ImportError{Line: lines[i], Err: FieldError("id", "%q already appears on line %d", a.ID, l)}
		}
		if l, dup := names[a.Username]; dup {
			return nil, &ImportError{Line: lines[i], Err: FieldError("username", "%q already appears on line %d", a.Username, l)}
		}
		ids[a.ID], names[a.Username] = lines[i], lines[i]
	}
	return out, nil
}

// skipSpace peeks at the first non-space byte, returning it and its line.
func skipSpace(br *bufio.Reader) (byte, int, error) {
	line := 1
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, line, err
		}
		switch b {
		case '\n':
			line++
		case ' ', '\t', '\r':
		case 0xEF: // UTF-8 byte order mark
			if rest, _ := br.Peek(2); bytes.Equal(rest, []byte{0xBB, 0xBF}) {
				_, _ = br.Discard(2)
				continue
			}
			fallthrough
		default:
			return b, line, br.UnreadByte()
		}
	}
}

func decodeAccount(data []byte) (*Account, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j AccountJSON
	if err := dec.Decode(&j); err != nil {
		return nil, jsonError(err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return j.Account(), nil
}

// jsonError makes decoder errors readable without echoing input.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON: %v", se)
	case errors.As(err, &te):
		return FieldError(te.Field, "must be a JSON %s", te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return FieldError(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a known field")
	}
	return err
}

func parseLines(br *bufio.Reader, startLine int) ([]*Account, []int, error) {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), MaxAccountJSONLine)
	var out []*Account
	var lines []int
	line := startLine - 1
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		a, err := decodeAccount(text)
		if err != nil {
			return nil, nil, &ImportError{Line: line, Err: err}
		}
		out = append(out, a)
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, &ImportError{Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", MaxAccountJSONLine)}
		}
		return nil, nil, err
	}
	return out, lines, nil
}

func parseArray(br *bufio.Reader, startLine int) ([]*Account, []int, error) {
	// Read the whole array (bounded), then walk it with a decoder while
	// tracking line numbers from byte offsets.
	data, err := io.ReadAll(io.LimitReader(br, 1<<30+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > 1<<30 {
		return nil, nil, errors.New("file larger than 1 GiB: use JSON lines")
	}
	lineAt := func(off int64) int { return startLine + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, nil, &ImportError{Line: startLine, Err: jsonError(err)}
	}
	var out []*Account
	var lines []int
	for dec.More() {
		var raw json.RawMessage
		start := dec.InputOffset()
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, &ImportError{Line: lineAt(dec.InputOffset()), Err: jsonError(err)}
		}
		// Point at the line where the object starts, past separators.
		off := start
		for off < int64(len(data)) && bytes.IndexByte([]byte(" \t\r\n,"), data[off]) >= 0 {
			off++
		}
		if len(raw) > MaxAccountJSONLine {
			return nil, nil, &ImportError{Line: lineAt(off), Err: fmt.Errorf("record larger than %d bytes", MaxAccountJSONLine)}
		}
		a, err := decodeAccount(raw)
		if err != nil {
			return nil, nil, &ImportError{Line: lineAt(off), Err: err}
		}
		out = append(out, a)
		lines = append(lines, lineAt(off))
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, &ImportError{Line: lineAt(dec.InputOffset()), Err: jsonError(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &ImportError{Line: lineAt(dec.InputOffset()), Err: errors.New("data after the closing ]")}
	}
	return out, lines, nil
}
