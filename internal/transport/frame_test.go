package transport

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(buf.Bytes()), "00000002"+"6869"+"00000000"; got != want {
		t.Fatalf("frames = %s, want %s", got, want)
	}
	for _, want := range []string{"hi", ""} {
		got, err := ReadFrame(&buf, 0)
		if err != nil || string(got) != want {
			t.Fatalf("ReadFrame = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := ReadFrame(&buf, 0); err != io.EOF {
		t.Fatalf("ReadFrame at the end = %v, want io.EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	big := bytes.Repeat([]byte{7}, MaxFrameSize)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, big); err != nil {
		t.Fatalf("WriteFrame of MaxFrameSize bytes: %v", err)
	}
	got, err := ReadFrame(&buf, 0)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadFrame of MaxFrameSize bytes: %d bytes, %v", len(got), err)
	}
	if err := WriteFrame(io.Discard, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame of MaxFrameSize+1 bytes = %v, want ErrFrameTooLarge", err)
	}

	for _, tc := range []struct {
		name  string
		input string // hex
		limit int
		want  error
	}{
		{"length over the default limit", "00100001", 0, ErrFrameTooLarge},
		{"length 2^32-1", "ffffffff", 0, ErrFrameTooLarge},
		{"length over a small limit", "00000005" + "0102030405", 4, ErrFrameTooLarge},
		{"limit above the maximum is clamped", "00100001", 1 << 30, ErrFrameTooLarge},
		{"truncated header", "000000", 0, ErrFrameTruncated},
		{"truncated payload", "00000004" + "0102", 0, ErrFrameTruncated},
		{"header only", "00000001", 0, ErrFrameTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := hex.DecodeString(tc.input)
			r := bytes.NewReader(in)
			if _, err := ReadFrame(r, tc.limit); !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame = %v, want %v", err, tc.want)
			}
			if tc.want == ErrFrameTooLarge && r.Len() != len(in)-4 {
				t.Fatalf("ReadFrame read %d payload bytes of a frame it refused", len(in)-4-r.Len())
			}
		})
	}
	got, err = ReadFrame(bytes.NewReader([]byte{0, 0, 0, 4, 1, 2, 3, 4}), 4)
	if err != nil || len(got) != 4 {
		t.Fatalf("ReadFrame at exactly the limit = %x, %v", got, err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestFrameIOErrors(t *testing.T) {
	boom := errors.New("boom")
	if err := WriteFrame(failingWriter{boom}, []byte("x")); !errors.Is(err, boom) {
		t.Fatalf("WriteFrame = %v, want the writer's error", err)
	}
	if _, err := ReadFrame(failingReader{boom}, 0); !errors.Is(err, boom) {
		t.Fatalf("ReadFrame = %v, want the reader's error", err)
	}
	r := io.MultiReader(bytes.NewReader([]byte{0, 0, 0, 3, 1}), failingReader{boom})
	if _, err := ReadFrame(r, 0); !errors.Is(err, boom) || errors.Is(err, ErrFrameTruncated) {
		t.Fatalf("ReadFrame = %v, want the reader's error", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, 0)
	f.Add([]byte{0, 0, 0, 2, 'h', 'i', 0, 0, 0, 1}, 0)
	f.Add([]byte{0, 0, 0, 5, 1, 2, 3}, 3)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, -1)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		r := bytes.NewReader(in)
		got, err := ReadFrame(r, limit)
		consumed := in[:len(in)-r.Len()]
		if err != nil {
			if len(got) != 0 {
				t.Fatalf("ReadFrame returned %d bytes with error %v", len(got), err)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrFrameTruncated) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if limit > 0 && limit <= MaxFrameSize && len(got) > limit {
			t.Fatalf("payload of %d bytes over the limit %d", len(got), limit)
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), consumed) {
			t.Fatalf("re-encoding gives %x, the frame read was %x", out.Bytes(), consumed)
		}
	})
}

// trickleReader hands out one byte per Read, then err once its data is
// gone.
type trickleReader struct {
	data []byte
	err  error
}

func (r *trickleReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(b[:1], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestFrameBufferGrowsWithData: a header announcing a large frame followed
// by a few bytes allocates about what arrived, not what was announced.
func TestFrameBufferGrowsWithData(t *testing.T) {
	in := append([]byte{0x00, 0x10, 0x00, 0x00}, []byte("abc")...) // 1 MiB announced, 3 bytes sent
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	_, err := ReadFrame(&trickleReader{data: in, err: errors.New("stalled")}, 0)
	runtime.ReadMemStats(&ms1)
	if err == nil || errors.Is(err, ErrFrameTruncated) {
		t.Fatalf("ReadFrame = %v, want the reader's error", err)
	}
	if got := ms1.TotalAlloc - ms0.TotalAlloc; got > 64<<10 {
		t.Fatalf("ReadFrame allocated %d bytes for a frame of which 3 bytes arrived; want well under the 1 MiB announced", got)
	}
	// A whole frame delivered a byte at a time still reads exactly.
	payload := bytes.Repeat([]byte("kith"), 5000)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, payload); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&trickleReader{data: buf.Bytes(), err: io.EOF}, 0)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("ReadFrame byte by byte: %d bytes, %v", len(got), err)
	}
	if _, err := ReadFrame(&trickleReader{data: buf.Bytes()[:100], err: io.EOF}, 0); !errors.Is(err, ErrFrameTruncated) {
		t.Fatalf("ReadFrame of a truncated frame = %v, want ErrFrameTruncated", err)
	}
}
