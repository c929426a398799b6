// Package procmem reads the process's resident memory from
// /proc/self/status. edged reports private memory (RssAnon: heap and
// TensorFlow's buffers, what the process itself costs) apart from file pages
// (RssFile: mapped libraries and models, shared and reclaimable), because the
// TensorFlow and OpenCV libraries alone map ~270 MB of file pages.
package procmem

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// Status is resident memory in MiB.
type Status struct {
	AnonMiB float64 // RssAnon
	FileMiB float64 // RssFile
	PeakMiB float64 // VmHWM: peak resident set
	RSSMiB  float64 // VmRSS
}

// Read returns the current process's Status; zero values where
// /proc/self/status is not available (not Linux).
func Read() (Status, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return Status{}, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a /proc/PID/status file.
func Parse(r io.Reader) (Status, error) {
	var s Status
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		mib := kb / 1024
		switch k {
		case "RssAnon":
			s.AnonMiB = mib
		case "RssFile":
			s.FileMiB = mib
		case "VmHWM":
			s.PeakMiB = mib
		case "VmRSS":
			s.RSSMiB = mib
		}
	}
	return s, sc.Err()
}

// BenchMetrics names the figures for testing.B.ReportMetric (in MB, as the
// benchmarks have always reported them).
func (s Status) BenchMetrics() map[string]float64 {
	return map[string]float64{"RssAnon-MB": s.AnonMiB, "RssFile-MB": s.FileMiB, "VmHWM-MB": s.PeakMiB}
}
