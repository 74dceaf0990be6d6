package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: the set-up, then per scenario
// its totals and a table of steps, then a summary.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine   %d cores (%s), %s memory, disk %s, %s, %s\n", m.Cores, m.CPU, mib(m.MemoryBytes), m.Disk, m.OS, m.GoVersion)
	fmt.Fprintf(w, "          load average at start %s; %.2f cores busy just before the run\n", m.LoadAverage, m.BusyBefore)
	fmt.Fprintf(w, "          a system call %.2f µs, a loopback round trip %.1f µs\n", m.Probe.SyscallMicros, m.Probe.LoopbackRTTMicros)
	fmt.Fprintf(w, "database  %s; server %s\n", r.Database, r.Server)
	fmt.Fprintf(w, "run       %s accounts (%s seeded in %.1fs), %d clients", thousands(int64(r.Accounts)), thousands(int64(r.Seeded)), r.SeedSeconds, r.Clients)
	if r.Iterations > 0 {
		fmt.Fprintf(w, ", %d flows per client\n", r.Iterations)
	} else {
		fmt.Fprintf(w, ", %gs per scenario after a %gs warm-up\n", r.Duration, r.Warmup)
	}
	fmt.Fprintf(w, "argon2id  %s\n", r.Argon2id)
	if a := r.Audit; a.Requested > 0 || a.EventsAtStart > 0 {
		fmt.Fprintf(w, "audit log %s events signed when the measurement started", thousands(a.EventsAtStart))
		if a.Requested > 0 {
			fmt.Fprintf(w, " (--audit-events %s: %s appended in %.1fs, %s signed in %.1fs, before the server started)",
				thousands(a.Requested), thousands(a.Appended), a.AppendSeconds, thousands(a.Signed), a.SignSeconds)
		}
		fmt.Fprintln(w)
	}
	if r.IdleRSSBytes > 0 {
		fmt.Fprintf(w, "server    idle RSS %s after start (%.1fs); peak RSS over the run %s\n", mib(r.IdleRSSBytes), r.StartSeconds, mib(r.PeakRSSBytes))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note      %s\n", n)
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n== %s  (%.1fs; audit log of %s events at the start)\n", s.Name, s.Seconds, thousands(s.AuditEvents))
		fmt.Fprintf(w, "   %s requests, %s/s; %s flows completed, %s/s; %s failed\n", thousands(s.Requests), fixed(s.RequestsPerSec),
			thousands(s.Flows), fixed(s.FlowsPerSec), thousands(s.FailedFlows))
		if len(s.FlowKinds) > 0 {
			var parts []string
			for _, k := range sortedKeys(s.FlowKinds) {
				parts = append(parts, fmt.Sprintf("%s %s", k, thousands(s.FlowKinds[k])))
			}
			fmt.Fprintf(w, "   flows by kind: %s\n", strings.Join(parts, ", "))
		}
		var cpu []string
		if s.ServerCPUSeconds > 0 || s.ServerPeakRSSBytes > 0 {
			cpu = append(cpu, fmt.Sprintf("server CPU %.1fs (%.2f cores), peak RSS %s", s.ServerCPUSeconds, s.ServerCores, mib(s.ServerPeakRSSBytes)))
		}
		if s.DatabaseCPUSeconds > 0 {
			cpu = append(cpu, fmt.Sprintf("PostgreSQL %.2f cores", s.DatabaseCPUSeconds/s.Seconds))
		}
		if s.ClientCPUSeconds > 0 {
			cpu = append(cpu, fmt.Sprintf("load generator %.2f cores", s.ClientCPUSeconds/s.Seconds))
		}
		cpu = append(cpu, fmt.Sprintf("whole machine %.2f cores busy", s.MachineBusyCores))
		fmt.Fprintf(w, "   %s\n", strings.Join(cpu, "; "))
		if wr := s.Writer; wr != nil {
			fmt.Fprintf(w, "   SQLite writer: held %.0f %% of the window, %.2f ms and %.1f transactions per flow, %.1f transactions per commit\n",
				wr.Busy*100, wr.MsPerFlow, wr.TurnsPerFlow, wr.TurnsPerCommit)
		}
		if q := s.Sequencer; q != nil && q.RoundsPerSec > 0 {
			share := ""
			if q.WriterShare > 0 {
				share = fmt.Sprintf(", %.0f %% of the writer's held time", q.WriterShare*100)
			}
			fmt.Fprintf(w, "   audit sequencer: %.1f rounds/s of %.1f events, each holding its lock %.2f ms on average before its commit, p99 ≤ %s, max ≤ %s%s\n",
				q.RoundsPerSec, q.EventsPerRound, q.MeanMs, boundText(q.P99Ms), boundText(q.MaxMs), share)
		}
		if s.JobsCompleted > 0 || s.JobsWaiting > 0 {
			fmt.Fprintf(w, "   background jobs: %s done in the window, %s waiting at its end, drained %.1fs later\n",
				thousands(s.JobsCompleted), thousands(s.JobsWaiting), s.DrainSeconds)
		}
		if s.StartsRunPerSec > 0 {
			fmt.Fprintf(w, "   starts run: %s/s (the starts answered, less the growth of the jobs waiting)\n", fixed(s.StartsRunPerSec))
		}
		if s.Profile != "" {
			fmt.Fprintf(w, "   CPU profile: %s\n", s.Profile)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "   step\tcount\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\t")
		for _, st := range s.Steps {
			fmt.Fprintf(tw, "   %s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", st.Name, thousands(st.Count), st.P50, st.P95, st.P99, st.Max, thousands(st.Errors))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(s.Errors) == 0 {
			fmt.Fprintln(w, "   errors: none")
		} else {
			fmt.Fprintln(w, "   errors:")
			for _, k := range sortedKeys(s.Errors) {
				fmt.Fprintf(w, "     %8s  %s\n", thousands(s.Errors[k]), k)
			}
		}
	}
	if len(r.Scenarios) > 1 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\treq/s\tflows/s\tslowest step p99 ms\terrors\tserver cores\tpeak RSS\t")
		for _, s := range r.Scenarios {
			slow := 0.0
			for _, st := range s.Steps {
				slow = max(slow, st.P99)
			}
			var nerr int64
			for _, n := range s.Errors {
				nerr += n
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%.2f\t%s\t\n", s.Name, fixed(s.RequestsPerSec), fixed(s.FlowsPerSec), slow, thousands(nerr),
				s.ServerCores, mib(s.ServerPeakRSSBytes))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	if b >= 10<<30 {
		return fmt.Sprintf("%.0f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// fixed formats a rate: no decimals from 100 up.
func fixed(v float64) string {
	if v >= 100 {
		return thousands(int64(v + 0.5))
	}
	return fmt.Sprintf("%.1f", v)
}

// boundText prints a histogram bound in milliseconds; -1 is the overflow.
func boundText(ms float64) string {
	if ms < 0 {
		return "> 2 s"
	}
	return fmt.Sprintf("%g ms", ms)
}
