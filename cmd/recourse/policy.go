package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recourse/recourse/policy"
)

const policyUsage = `Usage: recourse policy <subcommand> [flags]

Subcommands:
  lint [FILE]        check a policy (default: the built-in one); --strict fails on warnings
  explain            which rule decides an action for an account, and why
                     --action A (--account ID | --account-file F.json) [--initiator self|help_desk|api|admin] [--json]
  test [CASES.yaml]  run table-driven policy tests (default: the built-in policy's own cases)
  show               the policy's digest and what each action needs for each kind of subject
`

// loadPolicyFile loads a policy file ("" = built-in) and refuses it when
// lint finds errors; warnings are returned for the caller to report.
func loadPolicyFile(path string) (*policy.Policy, []policy.Finding, error) {
	if path == "" {
		p := policy.Default()
		return p, p.Lint(), nil
	}
	data, err := readBounded(path, policy.MaxPolicySize)
	if err != nil {
		return nil, nil, err
	}
	p, err := policy.Load(data, path)
	if err != nil {
		return nil, nil, err
	}
	findings := p.Lint()
	var errs []string
	for _, f := range findings {
		if f.Severity == policy.SeverityError {
			errs = append(errs, path+":"+f.String())
		}
	}
	if len(errs) > 0 {
		return nil, findings, fmt.Errorf("policy %s is refused:\n%s", path, strings.Join(errs, "\n"))
	}
	return p, findings, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

func cmdPolicy(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return usageError{"policy: no subcommand given"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("policy "+sub, stderr)
	switch sub {
	case "lint":
		strict := fs.Bool("strict", false, "exit with status 2 when there are warnings")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		path := fs.Arg(0)
		source := path
		var p *policy.Policy
		if path == "" {
			p, source = policy.Default(), policy.DefaultSource
		} else {
			data, err := readBounded(path, policy.MaxPolicySize)
			if err != nil {
				return err
			}
			if p, err = policy.Load(data, path); err != nil {
				fmt.Fprintln(stdout, err)
				return exitError{1, "policy lint: the policy does not load"}
			}
		}
		errs, warns := 0, 0
		for _, f := range p.Lint() {
			fmt.Fprintf(stdout, "%s:%s\n", source, f)
			if f.Severity == policy.SeverityError {
				errs++
			} else {
				warns++
			}
		}
		fmt.Fprintf(stdout, "%s: %d errors, %d warnings (sha256:%s)\n", source, errs, warns, p.ShortDigest())
		switch {
		case errs > 0:
			return exitError{1, "policy lint: errors found"}
		case warns > 0 && *strict:
			return exitError{2, "policy lint: warnings found (--strict)"}
		}
		return nil

	case "explain":
		var cf commonFlags
		cf.register(fs)
		action := fs.String("action", "", "the action, e.g. password.reset (required)")
		accountID := fs.String("account", "", "an account id in the database")
		accountFile := fs.String("account-file", "", "an account JSON file (the account shape plus optional authenticators), offline")
		initiator := fs.String("initiator", "self", "who asks: self, help_desk, api or admin")
		sessionAAL := fs.Int("session-aal", 0, "the subject's current sign-in level (0: not signed in)")
		asJSON := fs.Bool("json", false, "print the decision as JSON")
		policyPath := fs.String("policy", "", "a policy file (default: the configured or built-in policy)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if *action == "" || (*accountID == "") == (*accountFile == "") {
			return usageError{"policy explain: give --action and one of --account or --account-file"}
		}
		var p *policy.Policy
		var in policy.Input
		in.Request = policy.Request{Initiator: *initiator, SessionAAL: *sessionAAL, Time: time.Now().UTC()}
		if *accountFile != "" {
			f, err := os.Open(*accountFile)
			if err != nil {
				return err
			}
			in.Account, in.Authenticators, err = policy.ParseAccountFile(f)
			f.Close()
			if err != nil {
				return err
			}
			if p, _, err = loadPolicyFile(firstNonEmpty(*policyPath, getenv("RECOURSE_POLICY"))); err != nil {
				return err
			}
		} else {
			c, err := loadConfig(fs, &cf, getenv, nil)
			if err != nil {
				return err
			}
			if p, _, err = loadPolicyFile(firstNonEmpty(*policyPath, c.Policy)); err != nil {
				return err
			}
			st, err := openStore(ctx, c, c.AutoMigrate)
			if err != nil {
				return err
			}
			defer st.Close()
			svc, err := newService(ctx, c, st, newLogger(&Config{LogLevel: "warn", LogFormat: "text"}, stderr), false)
			if err != nil {
				return err
			}
			if in.Account, in.Authenticators, err = svc.PolicyFacts(ctx, *accountID); err != nil {
				return describe(err)
			}
		}
		d, err := p.Decide(ctx, *action, in)
		if err != nil {
			if errors.Is(err, policy.ErrUnknownAction) {
				return usageError{fmt.Sprintf("policy explain: unknown action %q; actions: %s", *action, strings.Join(policy.Actions(), ", "))}
			}
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(d.JSON())
		}
		p.WriteExplanation(stdout, d, fmt.Sprintf("%s (%s)", in.Account.ID, in.Account.DisplayName), *initiator)
		return nil

	case "test":
		policyPath := fs.String("policy", "", "the policy to test (default: the built-in policy)")
		verbose := fs.Bool("v", false, "list passing cases too")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		p, _, err := loadPolicyFile(*policyPath)
		if err != nil {
			return err
		}
		source, data := "built-in cases", policy.DefaultCases()
		if fs.NArg() > 0 {
			source = fs.Arg(0)
			if data, err = readBounded(source, 16<<20); err != nil {
				return err
			}
		}
		cases, err := policy.ParseCases(data, source)
		if err != nil {
			return err
		}
		if failed := policy.WriteResults(stdout, source, p.RunCases(ctx, cases), *verbose); failed > 0 {
			return exitError{1, fmt.Sprintf("policy test: %d of %d cases failed", failed, len(cases.Cases))}
		}
		return nil

	case "show":
		policyPath := fs.String("policy", "", "the policy to show (default: the built-in policy)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		p, _, err := loadPolicyFile(firstNonEmpty(*policyPath, getenv("RECOURSE_POLICY")))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Policy %s (%s)\nsha256:%s\n\n", p.Name, p.Source, p.Digest())
		now := time.Now().UTC()
		for _, action := range policy.Actions() {
			fmt.Fprintf(stdout, "%s (%s)\n", action, p.Actions[action].Tier)
			tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
			for _, ps := range policy.Personas(now) {
				d, err := p.Decide(ctx, action, policy.Input{Account: ps.Account, Authenticators: ps.Authenticators,
					Request: policy.Request{Initiator: "self", Time: now}})
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "  %s\t[%s]\t%s\n", ps.Name, strings.Join(d.Classes, " "), policy.Summary(d))
			}
			tw.Flush()
			fmt.Fprintln(stdout)
		}
		return nil
	}
	fmt.Fprint(stderr, policyUsage)
	return usageError{fmt.Sprintf("policy: unknown subcommand %q", sub)}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
