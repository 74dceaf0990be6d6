package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// procCPU returns a process's user+system CPU time in seconds, from
// /proc/PID/stat; ok is false off Linux or when the process is gone.
func procCPU(pid int) (float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after the last ')' start at field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / clockTicks, true
}

// procMemory returns a process's resident set size and its peak (VmRSS,
// VmHWM) in bytes.
func procMemory(pid int) (rss, peak int64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kib(v)
		case "VmHWM":
			peak = kib(v)
		}
	}
	return rss, peak, rss > 0
}

func kib(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n * 1024
}

// machineCPU returns the machine's busy and total CPU time in seconds
// (all cores), from /proc/stat.
func machineCPU() (busy, total float64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, false
	}
	var sum, idle int64
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return float64(sum-idle) / clockTicks, float64(sum) / clockTicks, true
}

// Machine describes where the numbers come from.
type Machine struct {
	OS          string  `json:"os"`
	CPU         string  `json:"cpu"`
	Cores       int     `json:"cores"`
	MemoryBytes int64   `json:"memory_bytes"`
	Disk        string  `json:"disk"`
	GoVersion   string  `json:"go_version"`
	LoadAverage string  `json:"load_average_at_start"`
	BusyBefore  float64 `json:"busy_cores_before"`
	// Probe is what a system call and a loopback round trip cost.
	Probe HostProbe `json:"probe"`
}

func describeMachine(dir string) Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				m.MemoryBytes = kib(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	m.Disk = describeDisk(dir)
	m.Probe = probeHost()
	return m
}

// describeDisk names the filesystem holding dir: device and type.
func describeDisk(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return ""
	}
	var dev, fstype, mnt string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		if (abs == f[1] || strings.HasPrefix(abs, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) >= len(mnt) {
			dev, mnt, fstype = f[0], f[1], f[2]
		}
	}
	if dev == "" {
		return ""
	}
	return fmt.Sprintf("%s (%s on %s)", dev, fstype, mnt)
}

// commandCPU returns the CPU time of every process whose command name is
// name (the local PostgreSQL server's processes are all "postgres"), by
// process id.
func commandCPU(name string) map[int]float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int]float64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		if s, ok := procCPU(pid); ok {
			out[pid] = s
		}
	}
	return out
}

// cpuSince is the CPU time the processes of now used since before: all of
// a process that started in between, none of one that exited (the server's
// connection pool keeps its backends, so little is lost).
func cpuSince(before, now map[int]float64) float64 {
	var sum float64
	for pid, s := range now {
		sum += s - before[pid]
	}
	return sum
}
