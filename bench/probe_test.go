package bench

import "testing"

// The probe measures; what it measures is the host's (no bound here).
func TestProbeHost(t *testing.T) {
	p := probeHost()
	if p.SyscallMicros <= 0 || p.LoopbackRTTMicros <= 0 {
		t.Fatalf("probeHost = %+v", p)
	}
}
