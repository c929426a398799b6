package procmem

import (
	"runtime"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := "Name:\tedged\nVmHWM:\t  420000 kB\nVmRSS:\t  300000 kB\nRssAnon:\t  102400 kB\nRssFile:\t  204800 kB\nThreads:\t12\nbroken line\nRssShmem:\t0 kB\n"
	s, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{AnonMiB: 100, FileMiB: 200, PeakMiB: 420000.0 / 1024, RSSMiB: 300000.0 / 1024}
	if s != want {
		t.Errorf("Parse = %+v, want %+v", s, want)
	}
	if m := s.BenchMetrics(); m["RssAnon-MB"] != 100 || m["RssFile-MB"] != 200 {
		t.Errorf("BenchMetrics = %v", m)
	}
}

func TestReadSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/status is Linux only")
	}
	s, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSMiB <= 0 || s.AnonMiB <= 0 || s.PeakMiB < s.RSSMiB {
		t.Errorf("implausible status of a running process: %+v", s)
	}
}
