package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

const apikeyUsage = `Usage: recourse apikey <subcommand> [flags]

Subcommands:
  create --owner ID --name NAME --scopes S1,S2 [--expires 30d]
                issue a key; its secret is printed once
  list [--owner ID]       list keys
  show ID                 show one key
  revoke ID               stop a key at once
  rotate ID [--overlap 24h]
                issue a replacement; the old key works on for the overlap
  scopes                  list the scopes a key can carry

With --server URL (or RECOURSE_SERVER) the command calls that server's API
with the key in RECOURSE_API_KEY; otherwise it works on the database
directly, as an administrator.
`

// apikeyBackend is where the subcommands act: the database (as the CLI
// operator) or a running server (as the key in RECOURSE_API_KEY).
type apikeyBackend interface {
	create(ctx context.Context, in client.CreateAPIKeyRequest) (*client.IssuedAPIKey, error)
	list(ctx context.Context, owner string) ([]client.APIKey, error)
	show(ctx context.Context, id string) (*client.APIKey, error)
	revoke(ctx context.Context, id string) (*client.APIKey, error)
	rotate(ctx context.Context, id string, overlap time.Duration) (*client.IssuedAPIKey, error)
}

func cmdAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, apikeyUsage)
		return usageError{"apikey: no subcommand given"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("apikey "+sub, stderr)
	var cf commonFlags
	cf.register(fs)
	server := fs.String("server", "", "call this server's API (env RECOURSE_SERVER) with the key in RECOURSE_API_KEY")
	asJSON := fs.Bool("json", false, "print JSON")
	var act func(b apikeyBackend) error
	switch sub {
	case "create":
		owner := fs.String("owner", "", "the person who answers for the key (required)")
		name := fs.String("name", "", "what the key is for (required)")
		scopes := fs.String("scopes", "", "scopes, comma-separated (required; see `recourse apikey scopes`)")
		expires := fs.String("expires", "", "lifetime (30d, 12h) or date (YYYY-MM-DD); default and maximum 90 days")
		act = func(b apikeyBackend) error {
			in := client.CreateAPIKeyRequest{Name: *name, Owner: *owner, Scopes: splitList(*scopes)}
			if *expires != "" {
				t, err := parseExpiry(*expires, time.Now())
				if err != nil {
					return usageError{"--expires: " + err.Error()}
				}
				in.ExpiresAt = &t
			}
			k, err := b.create(ctx, in)
			if err != nil {
				return err
			}
			return printIssued(stdout, stderr, k, *asJSON)
		}
	case "list":
		owner := fs.String("owner", "", "only this owner's keys")
		act = func(b apikeyBackend) error {
			keys, err := b.list(ctx, *owner)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSONLines(stdout, keys)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tOWNER\tSTATE\tEXPIRES\tLAST USED\tSCOPES")
			for _, k := range keys {
				last := "never"
				if k.LastUsedAt != nil {
					last = k.LastUsedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Owner, k.State, k.ExpiresAt.UTC().Format(time.RFC3339), last, strings.Join(k.Scopes, ","))
			}
			return tw.Flush()
		}
	case "show", "revoke":
		act = func(b apikeyBackend) error {
			if fs.NArg() != 1 {
				return usageError{"apikey " + sub + ": give one key ID"}
			}
			var k *client.APIKey
			var err error
			if sub == "show" {
				k, err = b.show(ctx, fs.Arg(0))
			} else {
				k, err = b.revoke(ctx, fs.Arg(0))
			}
			if err != nil {
				return err
			}
			return printKey(stdout, k, *asJSON)
		}
	case "rotate":
		overlap := fs.Duration("overlap", -1, "how long the old key keeps working (default: the server's, 24h)")
		act = func(b apikeyBackend) error {
			if fs.NArg() != 1 {
				return usageError{"apikey rotate: give one key ID"}
			}
			k, err := b.rotate(ctx, fs.Arg(0), *overlap)
			if err != nil {
				return err
			}
			return printIssued(stdout, stderr, k, *asJSON)
		}
	case "scopes":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCOPE\tOWNER ROLES\tDESCRIPTION")
		for _, sc := range service.Scopes {
			roles := strings.Join(sc.Roles, ",")
			if !sc.RoleRequired && roles != "" {
				roles += " (optional)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", sc.Name, roles, sc.Description)
		}
		return tw.Flush()
	default:
		fmt.Fprint(stderr, apikeyUsage)
		return usageError{fmt.Sprintf("apikey: unknown subcommand %q", sub)}
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if sub == "create" && (fs.Lookup("owner").Value.String() == "" || fs.Lookup("name").Value.String() == "" || fs.Lookup("scopes").Value.String() == "") {
		return usageError{"apikey create: --owner, --name and --scopes are required"}
	}
	if *server == "" {
		*server = getenv("RECOURSE_SERVER")
	}
	if *server != "" {
		key := getenv("RECOURSE_API_KEY")
		if key == "" {
			return usageError{"apikey: --server needs an API key in RECOURSE_API_KEY"}
		}
		c, err := client.New(*server, client.WithAPIKey(key), client.WithUserAgent("recourse-cli/"+version()))
		if err != nil {
			return usageError{err.Error()}
		}
		return act(remoteKeys{c})
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
	svc, err := newService(ctx, c, st, newLogger(&Config{LogLevel: "warn", LogFormat: c.LogFormat}, stderr), false)
	if err != nil {
		return err
	}
	return describe(act(localKeys{svc}))
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("rotate ID --overlap 1h"); the positional ones are
// left in fs.Args().
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// parseExpiry reads "30d", a Go duration, or a date or RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, found := strings.CutSuffix(s, "d"); found {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	t, err := parseDate(s)
	if err != nil {
		return time.Time{}, errors.New("want a lifetime like 30d or 12h, or a date like 2026-12-31")
	}
	return t, nil
}

func printIssued(stdout, stderr io.Writer, k *client.IssuedAPIKey, asJSON bool) error {
	if asJSON {
		return printJSONLines(stdout, []client.IssuedAPIKey{*k})
	}
	if err := printKey(stdout, &k.APIKey, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "secret:      %s\n", k.Secret)
	fmt.Fprintln(stderr, "The secret is shown once: store it in your secret manager now. Recourse keeps only its HMAC.")
	return nil
}

func printKey(w io.Writer, k *client.APIKey, asJSON bool) error {
	if asJSON {
		return printJSONLines(w, []client.APIKey{*k})
	}
	fmt.Fprintf(w, "id:          %s\nname:        %s\nowner:       %s\nstate:       %s\nscopes:      %s\nhint:        %s…\ncreated:     %s by %s\nexpires:     %s\n",
		k.ID, k.Name, k.Owner, k.State, strings.Join(k.Scopes, ", "), k.Hint, k.CreatedAt.UTC().Format(time.RFC3339), k.CreatedBy,
		k.ExpiresAt.UTC().Format(time.RFC3339))
	if k.LastUsedAt != nil {
		fmt.Fprintf(w, "last used:   %s from %s\n", k.LastUsedAt.UTC().Format(time.RFC3339), k.LastUsedIP)
	}
	if k.RotatedFrom != "" {
		fmt.Fprintf(w, "replaces:    %s\n", k.RotatedFrom)
	}
	if k.ReplacedBy != "" {
		fmt.Fprintf(w, "replaced by: %s\n", k.ReplacedBy)
	}
	return nil
}

func printJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

// localKeys acts on the database as the CLI operator.
type localKeys struct{ svc *service.Service }

func (l localKeys) view(k *recourse.APIKey) client.APIKey {
	return client.APIKey{ID: k.ID, Name: k.Name, Owner: k.OwnerID, Scopes: k.Scopes, Hint: k.Hint, State: l.svc.APIKeyState(k),
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP,
		RevokedAt: k.RevokedAt, RotatedFrom: k.RotatedFrom, ReplacedBy: k.ReplacedBy, Version: k.Version}
}

func (l localKeys) issued(k *service.IssuedAPIKey) *client.IssuedAPIKey {
	return &client.IssuedAPIKey{APIKey: l.view(k.Key), Secret: k.Secret}
}

func (l localKeys) create(ctx context.Context, in client.CreateAPIKeyRequest) (*client.IssuedAPIKey, error) {
	nk := service.NewAPIKey{Name: in.Name, OwnerID: in.Owner, Scopes: in.Scopes}
	if in.ExpiresAt != nil {
		nk.ExpiresAt = *in.ExpiresAt
	}
	k, err := l.svc.CreateAPIKey(ctx, nil, nk, cliMeta)
	if err != nil {
		return nil, err
	}
	return l.issued(k), nil
}

func (l localKeys) list(ctx context.Context, owner string) ([]client.APIKey, error) {
	var out []client.APIKey
	f := recourse.APIKeyFilter{OwnerID: owner, Limit: 500}
	for {
		page, err := l.svc.APIKeys(ctx, nil, f)
		if err != nil {
			return nil, err
		}
		for _, k := range page {
			out = append(out, l.view(k))
		}
		if len(page) < f.Limit {
			return out, nil
		}
		f.After = page[len(page)-1].ID
	}
}

func (l localKeys) show(ctx context.Context, id string) (*client.APIKey, error) {
	k, err := l.svc.APIKey(ctx, nil, id)
	if err != nil {
		return nil, err
	}
	v := l.view(k)
	return &v, nil
}

func (l localKeys) revoke(ctx context.Context, id string) (*client.APIKey, error) {
	k, err := l.svc.RevokeAPIKey(ctx, nil, id, 0, cliMeta)
	if err != nil {
		return nil, err
	}
	v := l.view(k)
	return &v, nil
}

func (l localKeys) rotate(ctx context.Context, id string, overlap time.Duration) (*client.IssuedAPIKey, error) {
	k, err := l.svc.RotateAPIKey(ctx, nil, id, overlap, 0, cliMeta)
	if err != nil {
		return nil, err
	}
	return l.issued(k), nil
}

// remoteKeys calls a running server with the Go client.
type remoteKeys struct{ c *client.Client }

func (r remoteKeys) create(ctx context.Context, in client.CreateAPIKeyRequest) (*client.IssuedAPIKey, error) {
	return r.c.CreateAPIKey(ctx, in)
}

func (r remoteKeys) list(ctx context.Context, owner string) ([]client.APIKey, error) {
	var out []client.APIKey
	for k, err := range r.c.APIKeys(ctx, owner) {
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func (r remoteKeys) show(ctx context.Context, id string) (*client.APIKey, error) {
	return r.c.APIKey(ctx, id)
}

func (r remoteKeys) revoke(ctx context.Context, id string) (*client.APIKey, error) {
	return r.c.RevokeAPIKey(ctx, id)
}

func (r remoteKeys) rotate(ctx context.Context, id string, overlap time.Duration) (*client.IssuedAPIKey, error) {
	return r.c.RotateAPIKey(ctx, id, overlap)
}
