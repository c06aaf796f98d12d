package seed_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kith-project/kith/seed"
)

// A phrase typed untidily gives the same keys as the tidy one.
func ExampleParsePhrase() {
	typed := "  1. LEGAL  2. winner\t3. thank 4. year 5. wave 6. sausage 7. worth 8. useful\n" +
		"9. legal 10. winner 11. thank 12. year 13. wave 14. sausage 15. worth 16. useful\r\n" +
		"17. legal 18. winner 19. thank 20. year 21. wave 22. sausage 23. worth 24. title\n"
	phrase, err := seed.ParsePhrase(typed)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := phrase.Seed("") // no BIP39 passphrase
	user, _ := seed.DeriveUser(s)
	device, archive, _ := seed.DeriveDevice(s, 0)
	fmt.Println("user ID:  ", user.Public())
	fmt.Println("device ID:", device.Public())
	fmt.Println("archive:  ", archive.Recipient())
	// Output:
	// user ID:   6123d662699081242c842827165153676a52301adac1ec17c18557ca96e5f2c5
	// device ID: e2d105eeddc7b90066e692dc40db050e8d541f09e436a436b6da0285cbd20440
	// archive:   age1szm8p3tz4rcrnej09rmxwau5aymgrd8fcdpzytd5czgeqte5840sppd66d
}

// A mistyped word is named, with the closest words of the list.
func ExampleWordError() {
	_, err := seed.ParsePhrase("legal winner thank year wave sausage wroth useful legal winner thank yellow")
	var we *seed.WordError
	if errors.As(err, &we) {
		fmt.Println(we.Position, we.Word, we.Suggestions)
	}
	fmt.Println(err)
	fmt.Println(errors.Is(err, seed.ErrInvalidPhrase))
	// Output:
	// 7 wroth [worth wrong write]
	// word 7 "wroth" is not in the BIP39 English word list; did you mean "worth", "wrong" or "write"?
	// true
}

// The user key certifies a device; anyone can check the certificate.
func ExampleUserKey_IssueDeviceCert() {
	phrase, _ := seed.ParsePhrase("legal winner thank year wave sausage worth useful legal winner thank yellow")
	s := phrase.Seed("")
	user, _ := seed.DeriveUser(s)
	device, archive, _ := seed.DeriveDevice(s, 1)
	cert, err := user.IssueDeviceCert(seed.DeviceCert{
		Device:  device.Public(),
		Index:   1,
		Archive: archive.Recipient(),
		Name:    "laptop",
		Roles:   []string{"access"},
		Issued:  time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b := cert.Marshal()
	parsed, err := seed.ParseDeviceCert(b)
	fmt.Println(len(b), err, parsed.Name, parsed.User.Equal(user.Public()))
	_, err = seed.ParseRevocation(b)
	fmt.Println(err)
	// Output:
	// 197 <nil> laptop true
	// seed: reading a revocation: wrong kind of record: this is a device certificate, not a revocation
}
