package agent

import "github.com/edged-dev/edged/internal/memtrim"

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
