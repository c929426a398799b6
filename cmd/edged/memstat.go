package main

import (
	"bufio"
	"github.com/edged-dev/edged/internal/memtrim"
	"os"
	"strconv"
	"strings"
)

// memStatus is the process's resident memory from /proc/self/status:
// RssAnon (heap, TensorFlow's buffers: what the process itself costs),
// RssFile (mapped libraries and models, shared and reclaimable) and the
// peak (VmHWM).
type memStatus struct {
	anonMiB, fileMiB, peakMiB, rssMiB float64
}

func readMemStatus() memStatus {
	var m memStatus
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
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
			m.anonMiB = mib
		case "RssFile":
			m.fileMiB = mib
		case "VmHWM":
			m.peakMiB = mib
		case "VmRSS":
			m.rssMiB = mib
		}
	}
	return m
}

// trimStartupPages gives back the pages of TensorFlow's library that only
// the start-up touched (see package memtrim); the ones inference needs
// come back on their own.
func trimStartupPages(log interface{ Debug(string, ...any) }) {
	before, after, err := memtrim.PageOut("libtensorflow")
	if err != nil {
		log.Debug("memtrim", "err", err)
		return
	}
	log.Debug("released TensorFlow start-up pages", "before_mib", before>>20, "after_mib", after>>20)
}
