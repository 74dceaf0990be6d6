package service

import (
	"context"
	"errors"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

// DemoPassword is the password of every demo account. It is printed at start
// and only ever set by SeedDemo.
const DemoPassword = "Tangerine-Harbor-42"

// DemoUser describes one seeded account for the demo banner and page.
type DemoUser struct {
	Username    string
	DisplayName string
	Role        string
	// TOTPSecret is shown in demo mode only, so a newcomer can add it to an
	// authenticator app or read the current code from /dev/demo.
	TOTPSecret string
}

type demoSeed struct {
	acct *recourse.Account
	role string
}

func demoOrg(now time.Time) []demoSeed {
	human := func(id, name string) *recourse.Account {
		return &recourse.Account{ID: id, Username: id, DisplayName: name, Kind: recourse.KindHuman, Status: recourse.StatusActive,
			Employment: recourse.EmploymentEmployee, IAL: 2,
			Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@example.com", Verified: true}}}
	}
	ceo := human("e.lindqvist", "Eva Lindqvist")
	ceo.Groups, ceo.IAL = []string{"executives"}, 3
	mgr := human("m.okafor", "Maya Okafor")
	mgr.ManagerID, mgr.Groups = ceo.ID, []string{"engineering", "managers"}
	emp := human("d.chen", "Daniel Chen")
	emp.ManagerID, emp.Groups = mgr.ID, []string{"engineering"}
	emp.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550100001", Verified: true}}
	peer := human("a.silva", "Ana Silva")
	peer.ManagerID, peer.Groups = mgr.ID, []string{"engineering"}
	emp.RecoveryContacts = []string{peer.ID}
	end := now.Add(30 * 24 * time.Hour).Truncate(24 * time.Hour)
	con := human("c.novak", "Chris Novak")
	con.Employment, con.SponsorID, con.ManagerID, con.ContractEnd = recourse.EmploymentContractor, mgr.ID, mgr.ID, &end
	con.IAL = 1
	adm := human("r.patel", "Riya Patel")
	adm.ManagerID, adm.Groups, adm.Roles, adm.IAL = ceo.ID, []string{"admins", "privileged"}, []string{recourse.RoleAdmin}, 3
	hd := human("h.berg", "Hugo Berg")
	hd.ManagerID, hd.Groups, hd.Roles = mgr.ID, []string{"it-support"}, []string{recourse.RoleHelpdesk}
	sec := human("s.ito", "Sam Ito")
	sec.ManagerID, sec.Groups, sec.Roles = ceo.ID, []string{"security"}, []string{recourse.RoleSecurity}
	svc := &recourse.Account{ID: "svc.payroll", Username: "svc.payroll", DisplayName: "Payroll export job", Kind: recourse.KindService,
		Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 1, Owners: []string{adm.ID, mgr.ID}, Groups: []string{"finance"}}
	return []demoSeed{
		{ceo, "executive"}, {mgr, "manager of Daniel, Ana, Hugo and Chris's sponsor"}, {emp, "employee (Ana is his recovery contact)"},
		{peer, "employee"}, {con, "contractor, contract ends " + end.Format("2006-01-02")}, {adm, "privileged administrator"},
		{hd, "help-desk agent"}, {sec, "security team"}, {svc, "service account owned by Riya and Maya"},
	}
}

// SeedDemo creates the demo organisation if the directory is empty; either
// way it returns the demo users. Each person gets DemoPassword and a TOTP
// authenticator. The organisation is created in one transaction, so a
// process killed while seeding leaves an empty directory that the next start
// seeds again, never a half-seeded one that it would take as done.
func (s *Service) SeedDemo(ctx context.Context) ([]DemoUser, error) {
	now := s.now()
	org := demoOrg(now)
	existing, err := s.store.ListAccounts(ctx, recourse.AccountFilter{Limit: 1})
	if err != nil {
		return nil, internal("seed demo", err)
	}
	if len(existing) == 0 {
		if err := s.seedDemo(ctx, org, now); err != nil {
			return nil, err
		}
	}
	return s.DemoUsers(ctx)
}

func (s *Service) seedDemo(ctx context.Context, org []demoSeed, now time.Time) error {
	var accts []*recourse.Account
	batch := map[string]*recourse.Account{}
	for _, d := range org {
		if err := d.acct.Validate(); err != nil {
			return err
		}
		accts = append(accts, d.acct)
		batch[d.acct.ID] = d.acct
	}
	// The slow work (hashing, key generation) happens before the transaction.
	type credentials struct {
		hash string
		totp *recourse.Authenticator
	}
	creds := map[string]credentials{}
	for _, d := range org {
		if d.acct.Kind != recourse.KindHuman {
			continue
		}
		if err := s.cfg.PasswordRules.Check(DemoPassword, passwordContext(d.acct)...); err != nil {
			return err
		}
		hash, err := hashPassword(DemoPassword, s.cfg.PasswordParams)
		if err != nil {
			return err
		}
		key, err := credential.NewTOTPKey(s.cfg.Issuer, d.acct.Username)
		if err != nil {
			return internal("seed demo", err)
		}
		au := &recourse.Authenticator{ID: recourse.NewID("au_"), AccountID: d.acct.ID, Kind: recourse.AuthTOTP, Status: recourse.AuthActive,
			Name: "Demo authenticator app", CreatedAt: now}
		au.Secret = s.sealer.Seal([]byte(key.Secret), []byte(au.ID))
		creds[d.acct.ID] = credentials{hash, au}
	}
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		// Another process may have seeded since the directory was read.
		if _, err := tx.Account(ctx, org[0].acct.ID); err == nil {
			return nil
		} else if !errors.Is(err, recourse.ErrNotFound) {
			return err
		}
		if _, err := s.importAccountsTx(ctx, tx, accts, batch, now, systemMeta); err != nil {
			return err
		}
		for _, d := range org {
			c, ok := creds[d.acct.ID]
			if !ok {
				continue
			}
			if err := s.setPasswordTx(ctx, tx, d.acct, c.hash, now, systemMeta); err != nil {
				return err
			}
			if err := tx.CreateAuthenticator(ctx, c.totp); err != nil {
				return err
			}
			if err := s.event(ctx, tx, c.totp, recourse.AuthEventBound, systemMeta); err != nil {
				return err
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeSuccess,
				SubjectID: c.totp.AccountID, After: authenticatorAttrs(c.totp), Reason: "demo seed"}, systemMeta); err != nil {
				return err
			}
		}
		return nil
	})
	return internal("seed demo", err)
}

// DemoUsers lists the demo accounts that exist, with their TOTP secrets.
// Only call it in demo mode: it opens sealed secrets.
func (s *Service) DemoUsers(ctx context.Context) ([]DemoUser, error) {
	var out []DemoUser
	for _, d := range demoOrg(s.now()) {
		a, err := s.store.Account(ctx, d.acct.ID)
		if errors.Is(err, recourse.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, internal("demo users", err)
		}
		u := DemoUser{Username: a.Username, DisplayName: a.DisplayName, Role: d.role}
		auths, err := s.store.Authenticators(ctx, a.ID)
		if err != nil {
			return nil, internal("demo users", err)
		}
		for _, au := range auths {
			if au.Kind == recourse.AuthTOTP && au.Status == recourse.AuthActive && au.Name == "Demo authenticator app" {
				if secret, err := s.sealer.Open(au.Secret, []byte(au.ID)); err == nil {
					u.TOTPSecret = string(secret)
				}
			}
		}
		out = append(out, u)
	}
	return out, nil
}
