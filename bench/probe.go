package bench

import (
	"net"
	"os"
	"time"
)

// HostProbe is what a system call and a loopback round trip cost on the
// machine, measured before a run. Hosts of the same core count differ most
// in these: SQLite's commits are a few system calls a page, and every
// PostgreSQL statement is a loopback round trip, so the probe says how far
// numbers from two machines can be compared (docs/benchmarks.md).
type HostProbe struct {
	// SyscallMicros is one cheap system call (getppid), in µs.
	SyscallMicros float64 `json:"syscall_us"`
	// LoopbackRTTMicros is a one-byte TCP round trip on 127.0.0.1, in µs.
	LoopbackRTTMicros float64 `json:"loopback_rtt_us"`
}

// probeHost measures the probe: 100,000 system calls and 5,000 round
// trips, about 0.2 s; the best of three rounds of each.
func probeHost() HostProbe {
	var p HostProbe
	best := func(rounds int, f func() float64) float64 {
		m := 0.0
		for i := range rounds {
			if v := f(); i == 0 || v < m {
				m = v
			}
		}
		return m
	}
	p.SyscallMicros = best(3, func() float64 {
		const n = 100_000
		t := time.Now()
		for range n {
			os.Getppid() // not served by the vDSO: a real system call
		}
		return micros(time.Since(t), n)
	})
	p.LoopbackRTTMicros = best(3, func() float64 {
		v, err := loopbackRTT(5_000)
		if err != nil {
			return 0
		}
		return v
	})
	return p
}

// loopbackRTT echoes one byte n times over a TCP connection on 127.0.0.1.
func loopbackRTT(n int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	b := make([]byte, 1)
	t := time.Now()
	for range n {
		if _, err := c.Write(b); err != nil {
			return 0, err
		}
		if _, err := c.Read(b); err != nil {
			return 0, err
		}
	}
	return micros(time.Since(t), n), nil
}

func micros(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) / 1e3 }
