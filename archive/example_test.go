package archive_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/seed"
)

// Two devices cooperate to read an archive: B holds the outer key and
// peels, A holds the inner key and opens.
func Example() {
	phrase := bytes.Repeat([]byte{1}, seed.SeedSize) // a BIP39 seed, in real life from the phrase
	_, keyA, _ := seed.DeriveDevice(phrase, 0)
	_, keyB, _ := seed.DeriveDevice(phrase, 1)

	sealed, err := archive.Seal(context.Background(), []archive.Record{
		{Conversation: "dinner", Data: []byte("Tuesday at eight — agreed by all three")},
	}, archive.Recipients{Inner: keyA.Recipient(), Outer: keyB.Recipient()}, nil)
	if err != nil {
		panic(err)
	}

	var parts []archive.Part
	for _, b := range sealed.Blobs {
		inner, err := archive.PeelOuter(b.Data, keyB) // on device B
		if err != nil {
			panic(err)
		}
		// … B sends inner to A over the authenticated channel …
		part, err := archive.OpenInner(inner, keyA) // on device A
		if err != nil {
			panic(err)
		}
		parts = append(parts, part)
	}
	records, err := archive.Assemble(parts)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %s\n", records[0].Conversation, records[0].Data)

	// A alone opens nothing.
	_, err = archive.PeelOuter(sealed.Blobs[0].Data, keyA)
	fmt.Println(err != nil)
	// Output:
	// dinner: Tuesday at eight — agreed by all three
	// true
}
