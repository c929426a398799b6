package fleet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// The wire form of every fleet payload. Without a fleet key it is the
// JSON itself. With one it is an envelope:
//
//	"EDF1" | key id (8 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext and tag
//
// with the topic as additional authenticated data, so a record copied to
// another person's (or another fleet's) topic does not authenticate
// either. The key id (the first 8 bytes of SHA-256("edged fleet key" ||
// key)) lets a device tell "another key" from "tampered" in its log; it
// reveals nothing about the key.
const envelopeMagic = "EDF1"

const (
	keyIDLen = 8
	nonceLen = 12
	// KeySize is the fleet key's length: AES-256.
	KeySize = 32
)

// codec seals and opens payloads.
type codec struct {
	aead  cipher.AEAD // nil: plaintext fleet
	keyID [keyIDLen]byte
}

func newCodec(key []byte) (*codec, error) {
	if len(key) == 0 {
		return &codec{}, nil
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c := &codec{aead: aead}
	c.keyID = KeyID(key)
	return c, nil
}

// KeyID is the public identifier of a fleet key (shown by `edged fleet
// status` and in "another key" log lines).
func KeyID(key []byte) [keyIDLen]byte {
	h := sha256.Sum256(append([]byte("edged fleet key"), key...))
	var id [keyIDLen]byte
	copy(id[:], h[:keyIDLen])
	return id
}

func (c *codec) encrypted() bool { return c.aead != nil }

// seal wraps plain for topic.
func (c *codec) seal(topic string, plain []byte) ([]byte, error) {
	if c.aead == nil {
		return plain, nil
	}
	out := make([]byte, 0, len(envelopeMagic)+keyIDLen+nonceLen+len(plain)+c.aead.Overhead())
	out = append(out, envelopeMagic...)
	out = append(out, c.keyID[:]...)
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return c.aead.Seal(out, nonce, plain, []byte(topic)), nil
}

// open unwraps a payload received on topic: ErrForged when it does not
// authenticate (or is plaintext in an encrypted fleet, or encrypted in a
// plaintext one).
func (c *codec) open(topic string, payload []byte) ([]byte, error) {
	sealed := bytes.HasPrefix(payload, []byte(envelopeMagic))
	switch {
	case c.aead == nil && sealed:
		return nil, fmt.Errorf("%w: the record is encrypted and this device has no fleet key (fleet.key_file)", ErrForged)
	case c.aead == nil:
		return payload, nil
	case !sealed:
		return nil, fmt.Errorf("%w: a plaintext record in a fleet that encrypts", ErrForged)
	}
	rest := payload[len(envelopeMagic):]
	if len(rest) < keyIDLen+nonceLen+c.aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated envelope", ErrCorrupt)
	}
	if !bytes.Equal(rest[:keyIDLen], c.keyID[:]) {
		return nil, fmt.Errorf("%w: sealed with another key (id %x, this device's is %x)", ErrForged, rest[:keyIDLen], c.keyID)
	}
	nonce := rest[keyIDLen : keyIDLen+nonceLen]
	plain, err := c.aead.Open(nil, nonce, rest[keyIDLen+nonceLen:], []byte(topic))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (tampered, or copied from another topic)", ErrForged)
	}
	return plain, nil
}

// LoadKey reads a fleet key file: 32 raw bytes, or 64 hex digits (with
// optional surrounding white space). Generate one with
// `head -c 32 /dev/urandom > fleet.key` (or `openssl rand -hex 32`) and copy
// it to every device of the fleet.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey is LoadKey on the file's bytes.
func ParseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(b))
}
