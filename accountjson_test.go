package recourse_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/recourse/recourse"
)

const twoAccounts = `{"id":"m.boss","username":"m.boss","display_name":"Mia Boss","emails":[{"address":"Mia@Example.com","verified":true}]}
{"id":"c.temp","username":"c.temp","display_name":"Cal Temp","employment":"contractor","sponsor":"m.boss","contract_end":"2027-01-31T00:00:00Z","phones":[{"number":"+1 555 000 0001","verified":false}]}
`

func TestParseAccounts(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantIDs  []string
		wantLine int    // line of the error, 0 = no error
		wantText string // substring of the error
	}{
		{"json lines", twoAccounts, []string{"m.boss", "c.temp"}, 0, ""},
		{"array", "[\n" + strings.ReplaceAll(strings.TrimSpace(twoAccounts), "}\n{", "},\n{") + "\n]\n", []string{"m.boss", "c.temp"}, 0, ""},
		{"blank lines and BOM", "\ufeff\n\n" + twoAccounts + "\n\n", []string{"m.boss", "c.temp"}, 0, ""},
		{"empty", "   \n", nil, 0, ""},
		{"unknown field", `{"id":"a","username":"a","display_name":"A","password":"x"}`, nil, 1, "password"},
		{"bad json on line 2", `{"id":"a","username":"a","display_name":"A"}` + "\n{oops\n", nil, 2, "invalid JSON"},
		{"invalid account line 3", "\n\n" + `{"id":"a","username":"a","display_name":"A","ial":7}`, nil, 3, "ial"},
		{"wrong type", `{"id":"a","username":"a","display_name":"A","groups":"admins"}`, nil, 1, "groups"},
		{"duplicate id", `{"id":"a","username":"a","display_name":"A"}` + "\n" + `{"id":"a","username":"b","display_name":"B"}`, nil, 2, "line 1"},
		{"duplicate username", `{"id":"a","username":"a","display_name":"A"}` + "\n" + `{"id":"b","username":"A","display_name":"B"}`, nil, 2, "username"},
		{"array error line", "[\n" + `{"id":"a","username":"a","display_name":"A"},` + "\n" + `{"id":"b","username":"b","display_name":"B","kind":"cat"}` + "\n]", nil, 3, "kind"},
		{"array trailing data", `[{"id":"a","username":"a","display_name":"A"}] x`, nil, 1, ""},
		{"two values on a line", `{"id":"a","username":"a","display_name":"A"} {"id":"b"}`, nil, 1, "more than one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recourse.ParseAccounts(strings.NewReader(tc.in))
			if tc.wantLine == 0 {
				if err != nil {
					t.Fatalf("ParseAccounts: %v", err)
				}
				var ids []string
				for _, a := range got {
					ids = append(ids, a.ID)
				}
				if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
					t.Fatalf("ids = %v, want %v", ids, tc.wantIDs)
				}
				return
			}
			var ie *recourse.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *ImportError", err)
			}
			if ie.Line != tc.wantLine || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err = %v (line %d), want line %d containing %q", err, ie.Line, tc.wantLine, tc.wantText)
			}
		})
	}
}

func TestParseAccountsNormalises(t *testing.T) {
	got, err := recourse.ParseAccounts(strings.NewReader(twoAccounts))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Emails[0].Address != "mia@example.com" || !got[0].Emails[0].Verified {
		t.Errorf("email = %+v", got[0].Emails[0])
	}
	if got[1].Phones[0].Address != "+15550000001" || got[1].ContractEnd == nil || got[1].Kind != recourse.KindHuman || got[1].IAL != 1 {
		t.Errorf("contractor = %+v", got[1])
	}
	// Round trip through the JSON shape.
	back := got[1].ToJSON().Account()
	if back.SponsorID != "m.boss" || back.Phones[0].Address != "+15550000001" || !back.ContractEnd.Equal(*got[1].ContractEnd) {
		t.Errorf("round trip = %+v", back)
	}
}

func FuzzParseAccounts(f *testing.F) {
	f.Add(twoAccounts)
	f.Add("[" + `{"id":"a","username":"a","display_name":"A"}` + "]")
	f.Add("[\n{},\n]")
	f.Add("\ufeff{\"id\":1}")
	f.Add("[[[[")
	f.Fuzz(func(t *testing.T, in string) {
		accts, err := recourse.ParseAccounts(strings.NewReader(in))
		if err != nil {
			var ie *recourse.ImportError
			if errors.As(err, &ie) && ie.Line < 1 {
				t.Fatalf("line %d < 1", ie.Line)
			}
			return
		}
		for _, a := range accts {
			if err := a.Validate(); err != nil {
				t.Fatalf("ParseAccounts returned an invalid account: %v", err)
			}
		}
	})
}
