// Command recourse runs and administers Recourse: the HTTP service (serve),
// schema migrations (migrate), the directory (account), and key generation
// (keygen). See README.md and docs/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "recourse:", err)
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a specific exit status (e.g. `policy lint --strict`
// with warnings only).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func exitCode(err error) int {
	switch e := err.(type) {
	case usageError:
		return 2
	case exitError:
		return e.code
	}
	return 1
}

const usage = `Usage: recourse <command> [flags]

Commands:
  serve      run the service (add --demo for a seeded demo organisation)
  migrate    apply database schema migrations
  account    manage the directory: create, import, list, show, unlock, set-password
  policy     check and explain the policy: lint, explain, test, show
  audit      the tamper-evident audit log: verify, prove, consistency, check, export, tail, key
  apikey     API keys for integrations: create, list, show, revoke, rotate, scopes
  keygen     print a new random master key (base64)
  bench      load-test a server: recovery, sign-in and routine scenarios
  version    print the version

Run 'recourse <command> -h' for a command's flags.
`

// run is the whole program, minus process concerns, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "account":
		return cmdAccount(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "policy":
		return cmdPolicy(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "apikey":
		return cmdAPIKey(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], getenv, stdout, stderr)
	case "keygen":
		return cmdKeygen(stdout)
	case "bench":
		return cmdBench(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "recourse", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
