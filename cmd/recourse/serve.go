package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/web"
)

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cf commonFlags
	cf.register(fs)
	listen := fs.String("listen", "", "address to listen on (default 127.0.0.1:8080; env RECOURSE_LISTEN)")
	publicURL := fs.String("public-url", "", "URL users reach the server at (env RECOURSE_PUBLIC_URL)")
	demo := fs.Bool("demo", false, "seed a demo organisation into an empty directory and show /dev/demo")
	policyPath := fs.String("policy", "", "policy file (default: the built-in policy; env RECOURSE_POLICY)")
	dev := fs.Bool("dev", false, "development mode: show the mail outbox at /dev/outbox")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	c, err := loadConfig(fs, &cf, getenv, func(c *Config, set map[string]bool) {
		if set["listen"] {
			c.Listen = *listen
		}
		if set["public-url"] {
			c.PublicURL = *publicURL
		}
		if set["policy"] {
			c.Policy = *policyPath
		}
		if *dev || *demo {
			c.Dev = true
		}
	})
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)

	st, err := openStore(ctx, c, c.AutoMigrate)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	// The service writes through a store that nudges the audit sequencer.
	seq, audited, err := startAudit(c, st, reg, log)
	if err != nil {
		return err
	}
	db, dialect, err := sqlDB(st)
	if err != nil {
		return err
	}
	if c.AutoMigrate {
		if err := jobs.Migrate(ctx, db, dialect, log); err != nil {
			return err
		}
	}
	queue, err := jobs.New(db, dialect, log, jobs.Options{DeliveryAttempts: c.Notify.MaxAttempts, WebhookWorkers: c.Notify.WebhookWorkers,
		Listener: pgxPool(st)})
	if err != nil {
		return err
	}
	svc, err := newService(ctx, c, audited, log, true, queue)
	if err != nil {
		return err
	}
	if err := enableNotifications(ctx, c, svc, queue, reg, log); err != nil {
		return err
	}
	pol, findings, err := loadPolicyFile(c.Policy)
	if err != nil {
		_ = svc.RecordPolicyLoad(ctx, "", c.Policy, false, err.Error())
		return fmt.Errorf("policy: %w", err)
	}
	for _, f := range findings {
		log.Warn("policy lint warning", "policy", pol.Source, "finding", f.String())
	}
	if err := svc.RecordPolicyLoad(ctx, pol.Digest(), pol.Source, true, ""); err != nil {
		return err
	}
	svc.SetPolicy(pol)

	// Warm the dummy hash so the first unknown-account sign-in costs the
	// same as the others.
	credential.DummyPasswordVerify("", svc.Config().PasswordParams)

	var demoUsers []service.DemoUser
	if *demo {
		if demoUsers, err = svc.SeedDemo(ctx); err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
	}
	var proxies []netip.Prefix
	for _, p := range c.TrustedProxies {
		proxies = append(proxies, netip.MustParsePrefix(p))
	}
	pub, _ := c.publicURL()
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recourse_policy_reloads_total", Help: "Policy reloads by result (ok, unchanged, refused).",
	}, []string{"result"})
	if err := reg.Register(reloads); err != nil {
		return err
	}
	if err := registerAuditMetrics(reg, st, seq); err != nil {
		return err
	}
	if err := registerStoreMetrics(reg, st); err != nil {
		return err
	}
	if err := registerQueueMetrics(reg, queue); err != nil {
		return err
	}
	// Sign what is pending before serving, so the log is current from the start.
	if _, err := seq.Drain(ctx); err != nil {
		log.Error("audit sequencing failed at start; events wait for the next round", "err", err)
	}
	srv, err := web.New(svc, web.Config{
		DevMode: c.Dev, Demo: *demo, SecureTransport: pub.Scheme == "https", TrustedProxies: proxies, Version: version(),
	}, log, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	addr := ln.Addr().(*net.TCPAddr)
	fmt.Fprintf(stdout, "Recourse %s listening on %s://%s (public URL %s)\n", version(), scheme, addr, pub)
	if *demo {
		printDemo(stdout, pub.String(), demoUsers, c.Notify.SMTP.Host)
	}
	log.Info("serving", "addr", addr.String(), "public_url", pub.String(), "database", dbKind(c), "dev", c.Dev, "demo", *demo)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if c.TLSCert != "" {
			err = hs.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			err = hs.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		log.Info("shutting down")
		return hs.Shutdown(sctx)
	})
	g.Go(func() error { return sweepSessions(gctx, svc, log) })
	g.Go(func() error { return seq.Run(gctx, 200*time.Millisecond) })
	g.Go(func() error { return watchAudit(gctx, svc, seq, log) })
	g.Go(func() error {
		// River runs its own goroutines; this one owns its start and stop.
		if err := queue.Start(context.WithoutCancel(gctx), svc); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return queue.Stop(sctx)
	})
	watcher := newPolicyWatcher(c.Policy, svc, log, reloads)
	g.Go(func() error { return watcher.run(gctx, 2*time.Second) })
	return g.Wait()
}

func dbKind(c *Config) string { k, _ := c.DatabaseTarget(); return k }

// policyWatcher reloads the policy file on SIGHUP and when its content
// changes. A new policy that does not load or has lint errors is refused:
// the one in force stays, and the failure is logged and counted.
type policyWatcher struct {
	path    string
	svc     *service.Service
	log     *slog.Logger
	reloads *prometheus.CounterVec
	last    [32]byte
}

func newPolicyWatcher(path string, svc *service.Service, log *slog.Logger, reloads *prometheus.CounterVec) *policyWatcher {
	w := &policyWatcher{path: path, svc: svc, log: log, reloads: reloads}
	if path != "" {
		if data, err := readBounded(path, policy.MaxPolicySize); err == nil {
			w.last = sha256.Sum256(data)
		}
	}
	return w
}

// run checks every interval and on SIGHUP until ctx ends.
func (w *policyWatcher) run(ctx context.Context, every time.Duration) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			w.check(ctx, true)
		case <-t.C:
			w.check(ctx, false)
		}
	}
}

// check reloads when forced or when the file's content changed. Every
// attempt is audited; a policy whose load cannot be audited is refused.
func (w *policyWatcher) check(ctx context.Context, force bool) {
	if w.path == "" {
		if force {
			w.log.Info("SIGHUP: the built-in policy is in force; set policy in the configuration to load a file")
		}
		return
	}
	data, err := readBounded(w.path, policy.MaxPolicySize)
	if err == nil && !force && sha256.Sum256(data) == w.last {
		return
	}
	if err == nil {
		w.last = sha256.Sum256(data)
	}
	p, findings, err := loadPolicyFile(w.path)
	if err != nil {
		if aerr := w.svc.RecordPolicyLoad(ctx, "", w.path, false, err.Error()); aerr != nil {
			w.log.Error("policy reload refusal not audited", "err", aerr)
		}
		w.reloads.WithLabelValues("refused").Inc()
		w.log.Error("policy reload refused; the policy in force stays", "file", w.path, "err", err, "in_force", w.svc.Policy().ShortDigest())
		return
	}
	for _, f := range findings {
		w.log.Warn("policy lint warning", "policy", w.path, "finding", f.String())
	}
	if p.Digest() == w.svc.Policy().Digest() {
		w.reloads.WithLabelValues("unchanged").Inc()
		return
	}
	if err := w.svc.RecordPolicyLoad(ctx, p.Digest(), w.path, true, ""); err != nil {
		w.reloads.WithLabelValues("refused").Inc()
		w.log.Error("policy reload refused: it could not be audited", "file", w.path, "err", err)
		return
	}
	w.svc.SetPolicy(p)
	w.reloads.WithLabelValues("ok").Inc()
	w.log.Info("policy reloaded", "file", w.path, "digest", p.Digest())
}

// sweepSessions deletes sessions that ended more than a week ago, hourly.
func sweepSessions(ctx context.Context, svc *service.Service, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n, err := svc.Store().DeleteExpiredSessions(ctx, time.Now().Add(-7*24*time.Hour))
			if err != nil && ctx.Err() == nil {
				log.Error("session sweep failed", "err", err)
				continue
			}
			if n > 0 {
				log.Info("old sessions deleted", "count", n)
			}
		}
	}
}

// printDemo prints how to try the demo; smtpHost is the relay mail goes
// through, "" when mail is kept in the outbox.
func printDemo(w io.Writer, base string, users []service.DemoUser, smtpHost string) {
	fmt.Fprintf(w, "\nDemo organisation ready. Open %s/signin and sign in as any of:\n", base)
	for _, u := range users {
		fmt.Fprintf(w, "  %-12s %-16s %s\n", u.Username, u.DisplayName, u.Role)
	}
	fmt.Fprintf(w, "Password for everyone: %s\n", service.DemoPassword)
	fmt.Fprintf(w, "Second factor: the current authenticator-app code for each user is at %s/dev/demo\n", base)
	if smtpHost != "" {
		fmt.Fprintf(w, "Mail goes through the SMTP relay %s; text messages (no SMS gateway) are kept at %s/dev/outbox\n\n", smtpHost, base)
		return
	}
	fmt.Fprintf(w, "Mail that would have been sent is at %s/dev/outbox\n\n", base)
}

// enableNotifications wires mail and webhooks: the courier (the SMTP relay,
// the guarded webhook client) with its metrics, and the service's delivery
// through the job queue. Without an SMTP host, mail stays in the outbox.
func enableNotifications(ctx context.Context, c *Config, svc *service.Service, queue *jobs.Queue, reg *prometheus.Registry, log *slog.Logger) error {
	pub, err := c.publicURL()
	if err != nil {
		return err
	}
	metrics, err := notify.NewMetrics(reg, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := svc.FailingWebhooks(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	})
	if err != nil {
		return err
	}
	courier, err := notify.New(notify.Options{Config: c.Notify, Issuer: c.Issuer, PublicURL: pub.String(), Metrics: metrics})
	if err != nil {
		return err
	}
	if err := svc.EnableNotifications(ctx, service.Notifications{Courier: courier, Scheduler: queue, Email: courier.SendsEmail(),
		SecurityMailbox: c.Notify.SecurityMailbox, Webhooks: c.Notify.Webhooks, RotationOverlap: c.Notify.RotationOverlap,
		FailingAfter: c.Notify.FailingAfter}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if courier.SendsEmail() {
		log.Info("mail goes through the SMTP relay", "host", c.Notify.SMTP.Host, "security", c.Notify.SMTP.Security)
	} else {
		log.Info("no SMTP relay configured: mail is kept in the outbox")
	}
	return nil
}

// watchAudit alerts the security team when the audit sequencer stalls:
// events wait to be signed into the log and none has been for five minutes.
func watchAudit(ctx context.Context, svc *service.Service, seq *audit.Sequencer, log *slog.Logger) error {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			backlog, err := svc.Store().AuditBacklog(ctx)
			if err == nil {
				err = svc.CheckAuditSequencer(ctx, backlog, seq.Sequenced(), 5*time.Minute)
			}
			if err != nil && ctx.Err() == nil {
				log.Error("audit sequencer watch failed", "err", err)
			}
		}
	}
}
