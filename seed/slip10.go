package seed

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	// Purpose is the first index of every kith path: the ASCII bytes of
	// "kith" read as a big-endian number.
	Purpose uint32 = 1802073192
	// Hardened is added to an index to make it hardened (written i' or iH).
	Hardened uint32 = 0x80000000
)

// SLIP-0010 HMAC keys for the master key of each curve.
const (
	curveEd25519    = "ed25519 seed"
	curveCurve25519 = "curve25519 seed"
)

// ErrNotHardened means that a derivation path has an index below Hardened:
// ed25519 and curve25519 have only hardened derivation.
var ErrNotHardened = errors.New("seed: every index of an ed25519 or curve25519 path must be hardened")

// DeriveEd25519 derives the ed25519 private key (the 32-byte RFC 8032 seed)
// and chain code at path from seed, which must be 16 to 64 bytes, as
// SLIP-0010 specifies. Every index of path must be hardened.
func DeriveEd25519(seed []byte, path ...uint32) (priv [32]byte, chainCode [32]byte, err error) {
	return derive(curveEd25519, seed, path)
}

// DeriveCurve25519 derives the X25519 private key (SLIP-0010's I_L, used as
// it is) and chain code at path from seed, which must be 16 to 64 bytes.
// Every index of path must be hardened.
func DeriveCurve25519(seed []byte, path ...uint32) (priv [32]byte, chainCode [32]byte, err error) {
	return derive(curveCurve25519, seed, path)
}

// derive is SLIP-0010 private derivation for curves where every 32-byte
// string is a valid private key and only hardened children exist.
func derive(curve string, seed []byte, path []uint32) (priv, chainCode [32]byte, err error) {
	if len(seed) < 16 || len(seed) > 64 {
		return priv, chainCode, fmt.Errorf("seed: deriving a key: the seed is %d bytes; SLIP-0010 takes 16 to 64", len(seed))
	}
	for i, index := range path {
		if index < Hardened {
			return priv, chainCode, fmt.Errorf("%w: index %d of the path is %d", ErrNotHardened, i+1, index)
		}
	}
	var sum [sha512.Size]byte // I_L || I_R
	defer clear(sum[:])
	mac := hmac.New(sha512.New, []byte(curve))
	mac.Write(seed)
	mac.Sum(sum[:0])
	var data [1 + 32 + 4]byte // 0x00 || ser256(k_par) || ser32(i)
	defer clear(data[:])
	for _, index := range path {
		copy(data[1:33], sum[:32])
		binary.BigEndian.PutUint32(data[33:], index)
		mac = hmac.New(sha512.New, sum[32:]) // New copies the key: sum may be overwritten
		mac.Write(data[:])
		mac.Sum(sum[:0])
	}
	copy(priv[:], sum[:32])
	copy(chainCode[:], sum[32:])
	return priv, chainCode, nil
}

// ParsePath parses a derivation path such as "m/1802073192'/1'/0'". A
// hardened index is marked with ', H or h; "m" alone is the empty path.
func ParsePath(s string) ([]uint32, error) {
	parts := strings.Split(s, "/")
	if parts[0] != "m" {
		return nil, fmt.Errorf("seed: path %q must start with m, as in m/%d'/0'", s, Purpose)
	}
	path := make([]uint32, 0, len(parts)-1)
	for _, p := range parts[1:] {
		hardened := false
		if n := len(p); n > 0 && (p[n-1] == '\'' || p[n-1] == 'H' || p[n-1] == 'h') {
			p, hardened = p[:n-1], true
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || uint32(v) >= Hardened {
			return nil, fmt.Errorf("seed: path %q: %q is not an index from 0 to %d, optionally followed by ', H or h", s, p, Hardened-1)
		}
		index := uint32(v)
		if hardened {
			index += Hardened
		}
		path = append(path, index)
	}
	return path, nil
}

// FormatPath writes path in the form ParsePath reads, hardened indexes
// marked with '.
func FormatPath(path []uint32) string {
	var b strings.Builder
	b.WriteString("m")
	for _, index := range path {
		b.WriteByte('/')
		if index >= Hardened {
			b.WriteString(strconv.FormatUint(uint64(index-Hardened), 10))
			b.WriteByte('\'')
		} else {
			b.WriteString(strconv.FormatUint(uint64(index), 10))
		}
	}
	return b.String()
}
