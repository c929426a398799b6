package fleet

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/store"
)

// The fleet's figures for BENCHMARKS.md, against a real Mosquitto on
// loopback, with sealed records and fsynced stores:
//
//	FLEET_BENCH=1 go test ./fleet -run TestFleetBench -v -count=1
//
// Skipped unless FLEET_BENCH is set (about a minute on 2 cores).

func benchOnly(t *testing.T) {
	if os.Getenv("FLEET_BENCH") == "" {
		t.Skip("set FLEET_BENCH=1 to run the fleet benchmarks")
	}
}

// byteCounter counts the payload bytes the broker delivers on a filter
// (one subscriber's view: what one device receives).
type byteCounter struct {
	n, msgs atomic.Int64
	c       paho.Client
}

func countBytes(t *testing.T, m *mosquitto, filter string) *byteCounter {
	bc := &byteCounter{}
	bc.c = paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID(fmt.Sprintf("count-%d", time.Now().UnixNano())))
	if tok := bc.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { bc.c.Disconnect(50) })
	bc.c.Subscribe(filter, 1, func(_ paho.Client, msg paho.Message) {
		if !msg.Retained() {
			bc.n.Add(int64(len(msg.Payload())))
			bc.msgs.Add(1)
		}
	}).WaitTimeout(5 * time.Second)
	return bc
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func TestFleetBenchEnrollToRecognisable(t *testing.T) {
	benchOnly(t)
	m := startMosquitto(t, "")
	key := bytes.Repeat([]byte{1}, 32)
	opts := Options{Key: key}
	a, b, c := newDeviceSync(t, "a", opts, true), newDeviceSync(t, "b", opts, true), newDeviceSync(t, "c", opts, true)
	a.startOn(m)
	b.startOn(m)
	c.startOn(m)
	bytesPeople := countBytes(t, m, "edged/fleet/home/people/+")
	time.Sleep(200 * time.Millisecond)

	const n, samples = 50, 3
	var lat, latG []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		id := a.enroll(fmt.Sprintf("Person %02d", i), uint64(1000+i), samples)
		var inStore time.Duration
		for {
			if inStore == 0 {
				if p, ss, ok := b.person(id); ok && len(ss) == samples && p.ID == id {
					inStore = time.Since(start)
				}
			}
			// Recognisable: in B's running gallery (OnChange -> Refresh).
			if _, ok := b.g.PersonClusters(id); ok && inStore > 0 {
				break
			}
			if time.Since(start) > within {
				t.Fatalf("enroll %d not on B within %s", i, within)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, inStore)
		latG = append(latG, time.Since(start))
	}
	time.Sleep(300 * time.Millisecond) // let echoes settle
	total := bytesPeople.n.Load()
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	t.Logf("enroll on A -> in B's store (%d enrolls of %d samples, 192-d, sealed, fsync): median %s, p95 %s, max %s",
		n, samples, r(quantile(lat, 0.5)), r(quantile(lat, 0.95)), r(quantile(lat, 1)))
	t.Logf("enroll on A -> in B's running gallery (recognisable): median %s, p95 %s, max %s",
		r(quantile(latG, 0.5)), r(quantile(latG, 0.95)), r(quantile(latG, 1)))
	t.Logf("broker traffic for new people: %d messages, %d payload bytes on people/+ (one subscriber's view) = %.0f bytes per enrolled sample",
		bytesPeople.msgs.Load(), total, float64(total)/float64(n*samples))

	// Growing one person a sample at a time republishes the whole record.
	before, msgs := bytesPeople.n.Load(), bytesPeople.msgs.Load()
	id := a.enroll("Grower", 7, 1)
	for k := 2; k <= 20; k++ {
		if _, err := a.en.EnrollEmbeddings(t.Context(), "", id, []enroll.Embedding{{Embedding: face(7, k), Quality: 0.9}}); err != nil {
			t.Fatal(err)
		}
		a.s.Changed(id)
		waitFor(t, within, "B has the sample", func() bool { _, ss, _ := b.person(id); return len(ss) == k })
	}
	time.Sleep(300 * time.Millisecond)
	grow := bytesPeople.n.Load() - before
	t.Logf("one person grown from 1 to 20 samples one at a time: %d messages, %d bytes = %.0f bytes per added sample (the record is republished whole; its size at 20 samples: %d bytes)",
		bytesPeople.msgs.Load()-msgs, grow, float64(grow)/20, recordBytes(t, a, id))
}

func recordBytes(t *testing.T, d *device, id string) int {
	var n int
	_ = d.st.View(func(tx *store.Tx) error {
		b, err := tx.FleetGet(prefRecord + id)
		n = len(b) + len(envelopeMagic) + keyIDLen + nonceLen + 16
		return err
	})
	return n
}

func TestFleetBenchCatchUp(t *testing.T) {
	benchOnly(t)
	m := startMosquitto(t, "")
	key := bytes.Repeat([]byte{1}, 32)
	opts := Options{Key: key}
	a := newDeviceSync(t, "a", opts, true)
	// 1,000 people of 3 samples each, written straight into A's store
	// (an enrollment each would take the gallery's time, not the fleet's).
	const people, samples = 1000, 3
	for from := 0; from < people; from += 100 {
		seed(t, a.st, from, from+100, samples)
	}
	start := time.Now()
	a.startOn(m)
	waitFor(t, 2*time.Minute, "A published everyone", func() bool {
		st, _ := a.s.Status()
		return st.PeopleLive == people && st.PendingPublish == 0
	})
	t.Logf("A folded and published %d people in %s", people, time.Since(start).Round(time.Millisecond))

	d := newDeviceSync(t, "new", Options{Key: key}, true)
	start = time.Now()
	d.startOn(m)
	took := waitFor(t, 2*time.Minute, "the new device caught up", func() bool {
		ps, _ := d.st.People()
		return len(ps) == people
	})
	t.Logf("a new device joining a fleet of %d people (%d samples each, sealed, fsync): all in its store after %s (%.2f ms per person)",
		people, samples, took.Round(time.Millisecond), float64(took.Microseconds())/1000/people)
	waitFor(t, 2*time.Minute, "the new device's gallery", func() bool { return d.g.Info().People == people })
	t.Logf("... and all in its running gallery after %s", time.Since(start).Round(time.Millisecond))
}

func seed(t *testing.T, st *store.Store, from, to, samples int) {
	err := st.Update(func(tx *store.Tx) error {
		for i := from; i < to; i++ {
			p := store.Person{Name: fmt.Sprintf("Person %04d", i)}
			if err := tx.PutPerson(&p); err != nil {
				return err
			}
			for k := 0; k < samples; k++ {
				s := store.Sample{PersonID: p.ID, Embedding: face(uint64(i), k), Backbone: "mobilefacenet", Quality: 0.9, Source: store.SourceFile}
				if err := tx.AddSample(&s, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
