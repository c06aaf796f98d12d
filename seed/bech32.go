package seed

import (
	"errors"
	"fmt"
	"strings"
)

// This file is the Bech32 encoding of BIP173, which age uses for its keys:
// "age1…" recipients and "AGE-SECRET-KEY-1…" identities. age keeps its
// encoder internal, and its types expose no bytes, so kith needs its own to
// go between raw X25519 keys and age's strings.

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var bech32Generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func bech32Polymod(hrp string, data []byte) uint32 {
	chk := uint32(1)
	step := func(v byte) {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range bech32Generator {
			if top>>i&1 == 1 {
				chk ^= g
			}
		}
	}
	for i := 0; i < len(hrp); i++ {
		step(hrp[i] >> 5)
	}
	step(0)
	for i := 0; i < len(hrp); i++ {
		step(hrp[i] & 31)
	}
	for _, v := range data {
		step(v)
	}
	return chk
}

// bech32Encode encodes data under a lower-case human-readable part.
func bech32Encode(hrp string, data []byte) string {
	values := convertBits(data, 8, 5, true)
	mod := bech32Polymod(hrp, append(values, 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.Grow(len(hrp) + 1 + len(values) + 6)
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(bech32Charset[v])
	}
	for i := 0; i < 6; i++ {
		b.WriteByte(bech32Charset[mod>>(5*(5-i))&31])
	}
	clear(values)
	return b.String()
}

var errBech32 = errors.New("not valid Bech32")

// bech32Decode decodes a Bech32 string, all lower case or all upper case,
// and returns its human-readable part in lower case.
func bech32Decode(s string) (hrp string, data []byte, err error) {
	lower := strings.ToLower(s)
	if lower != s && strings.ToUpper(s) != s {
		return "", nil, fmt.Errorf("%w: it mixes upper and lower case", errBech32)
	}
	pos := strings.LastIndexByte(lower, '1')
	if pos < 1 || len(lower)-pos-1 < 6 {
		return "", nil, fmt.Errorf("%w: the separator 1 is missing or misplaced", errBech32)
	}
	hrp = lower[:pos]
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", nil, fmt.Errorf("%w: the prefix has a character that is not printable ASCII", errBech32)
		}
	}
	values := make([]byte, 0, len(lower)-pos-1)
	defer clear(values)
	for i := pos + 1; i < len(lower); i++ {
		v := strings.IndexByte(bech32Charset, lower[i])
		if v < 0 {
			return "", nil, fmt.Errorf("%w: %q is not a Bech32 character", errBech32, lower[i])
		}
		values = append(values, byte(v))
	}
	if bech32Polymod(hrp, values) != 1 {
		return "", nil, fmt.Errorf("%w: the checksum does not match, so a character is mistyped", errBech32)
	}
	data = convertBits(values[:len(values)-6], 5, 8, false)
	if data == nil {
		return "", nil, fmt.Errorf("%w: the padding is not zero", errBech32)
	}
	return hrp, data, nil
}

// convertBits regroups a sequence of from-bit values into to-bit values.
// When pad is false, leftover bits must be fewer than from and zero, or it
// returns nil.
func convertBits(in []byte, from, to uint, pad bool) []byte {
	var acc uint32
	var bits uint
	maxv := uint32(1)<<to - 1
	out := make([]byte, 0, (uint(len(in))*from+to-1)/to)
	for _, v := range in {
		acc = acc<<from | uint32(v)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if pad {
		if bits > 0 {
			out = append(out, byte(acc<<(to-bits)&maxv))
		}
	} else if bits >= from || acc<<(to-bits)&maxv != 0 {
		clear(out)
		return nil
	}
	return out
}
