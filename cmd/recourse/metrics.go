package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/store/sqlite"
)

// registerStoreMetrics exports the SQLite writer's counters: on the
// embedded database every write goes through one writer, and its
// utilisation (the rate of recourse_sqlite_writer_busy_seconds_total) is
// how close the server is to the most it can write. Nothing on PostgreSQL.
func registerStoreMetrics(reg *prometheus.Registry, st recourse.Store) error {
	db, _, err := sqlDB(st)
	if err != nil {
		return nil
	}
	if _, ok := sqlite.Stats(db); !ok {
		return nil // PostgreSQL, or a database without the writer
	}
	stats := func() sqlite.WriterStats { s, _ := sqlite.Stats(db); return s }
	counter := func(name, help string, v func(sqlite.WriterStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(stats()) })
	}
	for _, c := range []prometheus.Collector{
		counter("recourse_sqlite_writer_busy_seconds_total",
			"Time the SQLite writer was held; its rate is the writer's utilisation (1 is saturated).",
			func(s sqlite.WriterStats) float64 { return s.Busy.Seconds() }),
		counter("recourse_sqlite_writer_wait_seconds_total",
			"Time writers spent waiting for the SQLite writer, summed over writers.",
			func(s sqlite.WriterStats) float64 { return s.Waited.Seconds() }),
		counter("recourse_sqlite_writer_turns_total",
			"Transactions and single writes that ran on the SQLite writer.",
			func(s sqlite.WriterStats) float64 { return float64(s.Turns) }),
		counter("recourse_sqlite_writer_commits_total",
			"SQLite COMMITs; turns per commit is how many transactions group commit put in each.",
			func(s sqlite.WriterStats) float64 { return float64(s.Commits) }),
		counter("recourse_sqlite_log_restarts_total",
			"Times the checkpointer restarted the write-ahead log in the writer's turn, each a pause of the writer for one sync.",
			func(s sqlite.WriterStats) float64 { return float64(s.LogRestarts) }),
		counter("recourse_sqlite_writer_failed_commits_total",
			"Group commits that failed; every transaction in them was told it failed.",
			func(s sqlite.WriterStats) float64 { return float64(s.FailedCommits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recourse_sqlite_writer_waiting",
			Help: "Writers waiting for the SQLite writer now."},
			func() float64 { return float64(stats().Waiting) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// registerQueueMetrics exports the in-process runner of "Can't sign in?"
// starts (jobs/direct.go): a start's answer waits for room in its buffer
// when the workers are behind, so a rising waited count is the server
// answering starts only as fast as it runs them, and a rising deferred
// count is starts left to the job queue after their fallback time, a
// flood the workers cannot drain; a rising refused count is starts turned
// away with a 429 because too many answers already wait.
func registerQueueMetrics(reg *prometheus.Registry, q *jobs.Queue) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recourse_recovery_starts_buffered",
			Help: "Answered recovery starts waiting for an in-process worker now."},
			func() float64 { return float64(q.StartStats().Buffered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recourse_recovery_starts_waited_total",
			Help: "Recovery starts whose answer waited for room among the starts waiting for a worker."},
			func() float64 { return float64(q.StartStats().Waited) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recourse_recovery_starts_deferred_total",
			Help: "Recovery starts left to the job queue at their fallback time, the in-process workers being behind."},
			func() float64 { return float64(q.StartStats().Deferred) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recourse_recovery_starts_refused_total",
			Help: "Recovery starts refused before they were recorded (429), the in-process workers being far behind."},
			func() float64 { return float64(q.StartStats().Refused) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
