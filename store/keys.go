package store

import (
	"encoding/binary"
	"strings"
)

// The key schema (SchemaVersion 2). Every key starts with a short prefix
// naming its kind; ids never contain '/'. Values are JSON unless noted;
// vectors inside them are base64 little-endian float32.
//
//	m/schema                  uint32 big-endian: the schema version
//	m/created                 RFC 3339 time the database was created
//	m/unknown_next            uint64 big-endian: the next unknown-N number
//	m/outbox_seq              uint64 big-endian: the last outbox seq assigned
//	m/reembed                 ReembedState: a re-embedding in progress (v2)
//	p/<person>                Person
//	pn/<lower-case name>      the person id (names are unique)
//	s/<person>/<sample>       Sample with its raw embedding and backbone id
//	sc/<person>/<sample>      the sample's face chip, PNG (only when kept)
//	cr/<person>/<sample>      the sample's face crop, PNG (v2, when kept)
//	ng/<person>/<negative>    Negative ("this face is not <person>")
//	ncr/<person>/<negative>   the negative's face crop, PNG (v2, when kept)
//	rb/<person>/<kind>/<id>   StagedVector: a re-embedded vector waiting for
//	                          the switch (kind s: sample, n: negative) (v2)
//	c/<person>                Clusters of the person (matching space)
//	x/<person>/<id>           Experience: an in-domain face of the person
//	                          from a track the device recognised (v2)
//	xcr/<person>/<id>         the experience face's crop, PNG (v2)
//	h/<head>                  HeadVersion
//	u/<uint64 BE number>      Unknown (unknown-<number>)
//	uc/<uint64 BE number>/<slot byte>  a face crop of the unknown, PNG
//	                          (MaxUnknownCrops slots; deleted with it)
//	o/<uint64 BE seq>         OutboxEvent, drained in seq order
//	cmd/<command>/<id>        CommandReply: the first reply of a command
//	                          with side effects, for de-duplication
//	                          (pruned after the window, package mqtt)
//
// Backbones: every raw vector (Sample, Negative, Unknown and its samples)
// and every HeadVersion records the id of the backbone network it belongs
// to, in a "backbone" field. The field is absent in databases written
// before version 2, which only ever held dlib vectors: an absent or empty
// id reads as LegacyBackbone ("dlib"), applied by BackboneOf and the
// BackboneID methods. Vectors of different backbones are never compared.
//
// Crops: a crop is the face aligned to face.CropTemplate (184x184 RGB),
// PNG-encoded (lossless, so a re-embedding sees the pixels the detector
// produced), from which any backbone's chip can be cut again. It is written
// in the transaction that writes its sample or negative, and deleted with
// it.
//
// Per-person kinds are keyed by the person first so deleting a person is a
// few prefix scans inside one transaction.
const (
	keySchema      = "m/schema"
	keyCreated     = "m/created"
	keyUnknownNext = "m/unknown_next"
	keyOutboxSeq   = "m/outbox_seq"
	keyReembed     = "m/reembed"
	prefixPerson   = "p/"
	prefixName     = "pn/"
	prefixSample   = "s/"
	prefixChip     = "sc/"
	prefixCrop     = "cr/"
	prefixNegative = "ng/"
	prefixNegCrop  = "ncr/"
	prefixStaged   = "rb/"
	prefixClusters = "c/"
	prefixHead     = "h/"
	prefixUnknown  = "u/"
	prefixOutbox   = "o/"
	prefixCommand  = "cmd/"
)

func personKey(id string) []byte   { return []byte(prefixPerson + id) }
func nameKey(name string) []byte   { return []byte(prefixName + normName(name)) }
func clustersKey(id string) []byte { return []byte(prefixClusters + id) }
func headKey(id string) []byte     { return []byte(prefixHead + id) }

func sampleKey(person, sample string) []byte { return []byte(prefixSample + person + "/" + sample) }
func chipKey(person, sample string) []byte   { return []byte(prefixChip + person + "/" + sample) }
func cropKey(person, sample string) []byte   { return []byte(prefixCrop + person + "/" + sample) }
func negativeKey(person, id string) []byte   { return []byte(prefixNegative + person + "/" + id) }
func negCropKey(person, id string) []byte    { return []byte(prefixNegCrop + person + "/" + id) }

func stagedKey(kind, person, id string) []byte {
	return []byte(prefixStaged + person + "/" + kind + "/" + id)
}

func u64Key(prefix string, n uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], n)
	return k
}

func unknownKey(n uint64) []byte  { return u64Key(prefixUnknown, n) }
func outboxKey(seq uint64) []byte { return u64Key(prefixOutbox, seq) }

// normName is the form names are compared in: trimmed, lower case.
func normName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }
