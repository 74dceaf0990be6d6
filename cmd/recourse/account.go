package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
)

const accountUsage = `Usage: recourse account <subcommand> [flags]

Subcommands:
  create        create one account from flags
  import FILE   create or update accounts from a JSON array or JSON lines file ('-' for stdin); all or nothing
  list          list accounts (--json for the account JSON shape, one per line)
  show ID       show one account
  unlock ID     clear a sign-in lock-out
  unfreeze ID   lift a freeze set by a "this wasn't me" report
  set-password ID   set a password read from standard input
`

func cmdAccount(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, accountUsage)
		return usageError{"account: no subcommand given"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("account "+sub, stderr)
	var cf commonFlags
	cf.register(fs)
	var run func(svc *service.Service) error
	switch sub {
	case "create":
		var j recourse.AccountJSON
		var email, phone, groups, roles, owners, contractEnd string
		var fromStdin bool
		fs.StringVar(&j.ID, "id", "", "account id (required)")
		fs.StringVar(&j.Username, "username", "", "sign-in name (default: the id)")
		fs.StringVar(&j.DisplayName, "name", "", "display name (required)")
		fs.StringVar((*string)(&j.Kind), "kind", "human", "human or service")
		fs.StringVar((*string)(&j.Employment), "employment", "employee", "employee, contractor or third_party")
		fs.StringVar(&contractEnd, "contract-end", "", "contract end date (YYYY-MM-DD or RFC 3339)")
		fs.StringVar(&j.Manager, "manager", "", "manager's account id")
		fs.StringVar(&j.Sponsor, "sponsor", "", "sponsor's account id (contractors, third parties)")
		fs.StringVar(&owners, "owners", "", "owners' account ids, comma-separated (service accounts)")
		fs.StringVar(&groups, "groups", "", "groups, comma-separated")
		fs.StringVar(&roles, "roles", "", "Recourse roles: admin, helpdesk, security (comma-separated)")
		fs.IntVar(&j.IAL, "ial", 1, "identity assurance level reached at proofing (1–3)")
		fs.StringVar(&email, "email", "", "a confirmed email address")
		fs.StringVar(&phone, "phone", "", "a confirmed phone number (+E.164)")
		fs.BoolVar(&fromStdin, "password-stdin", false, "read an initial password from standard input")
		run = func(svc *service.Service) error {
			if j.Username == "" {
				j.Username = j.ID
			}
			j.Groups, j.Roles, j.Owners = splitList(groups), splitList(roles), splitList(owners)
			if email != "" {
				j.Emails = []recourse.EmailJSON{{Address: email, Verified: true}}
			}
			if phone != "" {
				j.Phones = []recourse.PhoneJSON{{Number: phone, Verified: true}}
			}
			if contractEnd != "" {
				t, err := parseDate(contractEnd)
				if err != nil {
					return usageError{"--contract-end: " + err.Error()}
				}
				j.ContractEnd = &t
			}
			a := j.Account()
			if err := svc.CreateAccount(ctx, a, cliMeta); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created account %s (%s)\n", a.ID, a.Username)
			if fromStdin {
				pw, err := readSecret(stdin)
				if err != nil {
					return err
				}
				if err := svc.SetPassword(ctx, a.ID, pw, cliMeta); err != nil {
					return fmt.Errorf("account created, but the password was refused: %w", err)
				}
				fmt.Fprintln(stdout, "password set")
			}
			return nil
		}
	case "import":
		run = func(svc *service.Service) error {
			if fs.NArg() != 1 {
				return usageError{"account import: give one FILE, or - for standard input"}
			}
			var r io.Reader = stdin
			if name := fs.Arg(0); name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			accts, err := recourse.ParseAccounts(r)
			if err != nil {
				return fmt.Errorf("import refused, nothing changed: %w", err)
			}
			res, err := svc.ImportAccounts(ctx, accts, cliMeta)
			if err != nil {
				return fmt.Errorf("import refused, nothing changed: %w", err)
			}
			fmt.Fprintf(stdout, "imported %d accounts: %d created, %d updated\n", len(accts), res.Created, res.Updated)
			return nil
		}
	case "list":
		asJSON := fs.Bool("json", false, "print the account JSON shape, one account per line")
		query := fs.String("query", "", "only accounts whose id, username or name starts with this")
		run = func(svc *service.Service) error {
			var tw *tabwriter.Writer
			if !*asJSON {
				tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tNAME\tKIND\tSTATUS\tEMPLOYMENT\tGROUPS")
			}
			enc := json.NewEncoder(stdout)
			after := ""
			for {
				page, err := svc.ListAccounts(ctx, recourse.AccountFilter{After: after, Limit: 500, Query: *query})
				if err != nil {
					return err
				}
				for _, a := range page {
					if *asJSON {
						if err := enc.Encode(a.ToJSON()); err != nil {
							return err
						}
						continue
					}
					status := string(a.Status)
					if a.Locked() {
						status += " (locked)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Username, a.DisplayName, a.Kind, status, a.Employment, strings.Join(a.Groups, ","))
				}
				if len(page) < 500 {
					break
				}
				after = page[len(page)-1].ID
			}
			if tw != nil {
				return tw.Flush()
			}
			return nil
		}
	case "show":
		asJSON := fs.Bool("json", false, "print the account JSON shape")
		run = func(svc *service.Service) error {
			if fs.NArg() != 1 {
				return usageError{"account show: give one account ID"}
			}
			a, err := svc.Account(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(a.ToJSON())
			}
			auths, err := svc.Authenticators(ctx, a.ID)
			if err != nil {
				return err
			}
			return printAccount(stdout, a, auths)
		}
	case "unlock":
		run = func(svc *service.Service) error {
			if fs.NArg() != 1 {
				return usageError{"account unlock: give one account ID"}
			}
			if err := svc.UnlockAccount(ctx, fs.Arg(0), cliMeta); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "unlocked %s\n", fs.Arg(0))
			return nil
		}
	case "unfreeze":
		run = func(svc *service.Service) error {
			if fs.NArg() != 1 {
				return usageError{"account unfreeze: give one account ID"}
			}
			if err := svc.UnfreezeAccount(ctx, fs.Arg(0), cliMeta); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "unfroze %s\n", fs.Arg(0))
			return nil
		}
	case "set-password":
		run = func(svc *service.Service) error {
			if fs.NArg() != 1 {
				return usageError{"account set-password: give one account ID; the password is read from standard input"}
			}
			pw, err := readSecret(stdin)
			if err != nil {
				return err
			}
			if err := svc.SetPassword(ctx, fs.Arg(0), pw, cliMeta); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "password set for %s\n", fs.Arg(0))
			return nil
		}
	default:
		fmt.Fprint(stderr, accountUsage)
		return usageError{fmt.Sprintf("account: unknown subcommand %q", sub)}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(fs, &cf, getenv, nil)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, c.AutoMigrate)
	if err != nil {
		return err
	}
	defer st.Close()
	log := newLogger(&Config{LogLevel: "warn", LogFormat: c.LogFormat}, stderr)
	svc, err := newService(ctx, c, st, log, false)
	if err != nil {
		return err
	}
	if c.Notify.SMTP.Host != "" {
		// With a relay configured, notices the CLI causes (an unlock, a
		// password set) are queued like the server's: the running server's
		// workers deliver them.
		db, dialect, err := sqlDB(st)
		if err != nil {
			return err
		}
		queue, err := jobs.New(db, dialect, log, jobs.Options{})
		if err != nil {
			return err
		}
		if err := enableNotifications(ctx, c, svc, queue, prometheus.NewRegistry(), log); err != nil {
			return err
		}
	}
	return describe(run(svc))
}

// cliMeta is how commands run at the terminal appear in the audit log: an
// administrator (someone with the database and the master key) through
// the CLI.
var cliMeta = service.Meta{Channel: recourse.ViaCLI, Actor: recourse.AuditActor{Role: recourse.ActorAdmin}, UserAgent: "recourse-cli"}

// describe turns a domain error into a readable CLI error.
func describe(err error) error {
	var e *recourse.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	var ie *recourse.ImportError
	if errors.As(err, &ie) {
		return err
	}
	if e.Field != "" {
		return fmt.Errorf("%s: %s", e.Field, e.Message)
	}
	return errors.New(e.Message)
}

func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usageError{"no password on standard input"}
	}
	return line, nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, errors.New("use YYYY-MM-DD or RFC 3339")
	}
	return t, nil
}

func printAccount(w io.Writer, a *recourse.Account, auths []*recourse.Authenticator) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("ID", a.ID)
	row("Username", a.Username)
	row("Name", a.DisplayName)
	row("Kind", string(a.Kind))
	status := string(a.Status)
	if a.Locked() {
		status += fmt.Sprintf(" (locked since %s after %d failed sign-ins)", a.LockedAt.Format(time.RFC3339), a.FailedSignIns)
	}
	row("Status", status)
	row("Employment", string(a.Employment))
	if a.ContractEnd != nil {
		row("Contract end", a.ContractEnd.Format("2006-01-02"))
	}
	row("Manager", a.ManagerID)
	row("Sponsor", a.SponsorID)
	row("Owners", strings.Join(a.Owners, ", "))
	row("Groups", strings.Join(a.Groups, ", "))
	row("Roles", strings.Join(a.Roles, ", "))
	row("IAL", fmt.Sprint(a.IAL))
	for _, c := range append(append([]recourse.Channel{}, a.Emails...), a.Phones...) {
		state := "unconfirmed"
		if c.Verified {
			state = "confirmed"
		}
		if c.Shared {
			state += ", shared with another account"
		}
		row(strings.ToUpper(string(c.Kind[:1]))+string(c.Kind[1:]), fmt.Sprintf("%s (%s)", c.Address, state))
	}
	row("Recovery contacts", strings.Join(a.RecoveryContacts, ", "))
	for _, au := range auths {
		if au.Status == recourse.AuthActive {
			row("Authenticator", fmt.Sprintf("%s %q (added %s)", au.Kind, au.Name, au.CreatedAt.Format("2006-01-02")))
		}
	}
	return tw.Flush()
}
