package seed

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// slip10Node is one derivation step of a SLIP-0010 test vector: the path and
// the expected chain code, private key and public key (with SLIP-0010's 00
// prefix), in hex.
type slip10Node struct {
	path, chainCode, private, public string
}

type slip10Vector struct {
	name  string
	curve string // "ed25519" or "curve25519"
	seed  string
	nodes []slip10Node
}

const (
	slip10Seed1 = "000102030405060708090a0b0c0d0e0f"
	slip10Seed2 = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"
)

// slip10Vectors are typed in from SLIP-0010, "Test vectors"
// (https://github.com/satoshilabs/slips/blob/master/slip-0010.md).
var slip10Vectors = []slip10Vector{
	{
		name: "ed25519 vector 1", curve: "ed25519", seed: slip10Seed1,
		nodes: []slip10Node{
			{"m",
				"90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
				"2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
				"00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"},
			{"m/0H",
				"8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
				"68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
				"008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"},
			{"m/0H/1H",
				"a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
				"b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
				"001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"},
			{"m/0H/1H/2H",
				"2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
				"92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
				"00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"},
			{"m/0H/1H/2H/2H",
				"8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
				"30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
				"008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"},
			{"m/0H/1H/2H/2H/1000000000H",
				"68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
				"8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
				"003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"},
		},
	},
	{
		name: "ed25519 vector 2", curve: "ed25519", seed: slip10Seed2,
		nodes: []slip10Node{
			{"m",
				"ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
				"171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
				"008fe9693f8fa62a4305a140b9764c5ee01e455963744fe18204b4fb948249308a"},
			{"m/0H",
				"0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
				"1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
				"0086fab68dcb57aa196c77c5f264f215a112c22a912c10d123b0d03c3c28ef1037"},
			{"m/0H/2147483647H",
				"138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
				"ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
				"005ba3b9ac6e90e83effcd25ac4e58a1365a9e35a3d3ae5eb07b9e4d90bcf7506d"},
			{"m/0H/2147483647H/1H",
				"73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
				"3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
				"002e66aa57069c86cc18249aecf5cb5a9cebbfd6fadeab056254763874a9352b45"},
			{"m/0H/2147483647H/1H/2147483646H",
				"0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
				"5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
				"00e33c0f7d81d843c572275f287498e8d408654fdf0d1e065b84e2e6f157aab09b"},
			{"m/0H/2147483647H/1H/2147483646H/2H",
				"5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
				"551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
				"0047150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0"},
		},
	},
	{
		name: "curve25519 vector 1", curve: "curve25519", seed: slip10Seed1,
		nodes: []slip10Node{
			{"m",
				"77997ca3588a1a34f3589279ea2962247abfe5277d52770a44c706378c710768",
				"d70a59c2e68b836cc4bbe8bcae425169b9e2384f3905091e3d60b890e90cd92c",
				"005c7289dc9f7f3ea1c8c2de7323b9fb0781f69c9ecd6de4f095ac89a02dc80577"},
			{"m/0H",
				"349a3973aad771c628bf1f1b4d5e071f18eff2e492e4aa7972a7e43895d6597f",
				"cd7630d7513cbe80515f7317cdb9a47ad4a56b63c3f1dc29583ab8d4cc25a9b2",
				"00cb8be6b256ce509008b43ae0dccd69960ad4f7ff2e2868c1fbc9e19ec3ad544b"},
			{"m/0H/1H",
				"2ee5ba14faf2fe9d7ab532451c2be3a0a5375c5e8c44fb31d9ad7edc25cda000",
				"a95f97cfc1a61dd833b882c89d36a78a030ea6b2fbe3ae2a70e4f1fc9008d6b1",
				"00e9506455dce2526df42e5e4eb5585eaef712e5f9c6a28bf9fb175d96595ea872"},
			{"m/0H/1H/2H",
				"e1897d5a96459ce2a3d294cb2a6a59050ee61255818c50e03ac4263ef17af084",
				"3d6cce04a9175929da907a90b02176077b9ae050dcef9b959fed978bb2200cdc",
				"0018f008fcbc6d1cd8b4fe7a9eba00f6570a9da02a9b0005028cb2731b12ee4118"},
			{"m/0H/1H/2H/2H",
				"1cccc84e2737cfe81b51fbe4c97bbdb000f6a76eddffb9ed03108fbff3ff7e4f",
				"7ae7437efe0a3018999e6f00d72e810ebc50578dbf6728bfa1c7fe73501081a7",
				"00512e288a8ef4d869620dc4b06bb06ad2524b350dee5a39fcfeb708dbac65c25c"},
			{"m/0H/1H/2H/2H/1000000000H",
				"8ccf15d55b1dda246b0c1bf3e979a471a82524c1bd0c1eaecccf00dde72168bb",
				"7a59954d387abde3bc703f531f67d659ec2b8a12597ae82824547d7e27991e26",
				"00a077fcf5af53d210257d44a86eb2031233ac7237da220434ac01a0bebccc1919"},
		},
	},
	{
		name: "curve25519 vector 2", curve: "curve25519", seed: slip10Seed2,
		nodes: []slip10Node{
			{"m",
				"b62c0c81a80a0ee16b977abb3677eb47549d0eef090f7a6c2b2010e739875e34",
				"088491f5b4dfafbe956de471f3db10e02d784bc76050ee3b7c3f11b9706d3730",
				"0060cc3b40567729af08757e1efe62536dc864a57ec582f98b96f484201a260c7a"},
			{"m/0H",
				"341f386e571229e8adc52b82e824532817a31a35ba49ae334424e7228d020eed",
				"8e73218a1ba5c7b95e94b6e7cf7b37fb6240fb3b2ecd801402a4439da7067ee2",
				"007992b3f270ef15f266785fffb73246ad7f40d1fe8679b737fed0970d92cc5f39"},
			{"m/0H/2147483647H",
				"942cbec088b4ae92e8db9336025e9185fec0985a3da89d7a408bc2a4e18a8134",
				"29262b215c961bae20274588b33955c36f265c1f626df9feebb51034ce63c19d",
				"002372feac417c38b833e1aba75f2420278122d698605b995cafc2fed7bb453d41"},
			{"m/0H/2147483647H/1H",
				"fe02397ae2ca71efe455f470fb23928baf026360a9e9090e21958f6fba9efc30",
				"a4d2474bd98c5e9ff416f536697b89949627d6d2c384b81a86d29f1136f4c2d1",
				"00eca4fd0458d3f729b6218eda871b350fa8870a744caf6d30cd84dad2b9dd9c2d"},
			{"m/0H/2147483647H/1H/2147483646H",
				"b3b49d550e732ee629f4aeb4bf7213c3ae0f239fd10add513253cddbb8efb868",
				"d3500d9b30529c51d92497eded1d68d29f60c630c45c61a481c185e574c6e5cf",
				"00edaa3d381a2b02f40a80d69b2ce7ba7c3c4a9421744808857cd48c50d29b5868"},
			{"m/0H/2147483647H/1H/2147483646H/2H",
				"f6ded904046e9758b9388dbf95ea5db837ab98b03b00e4db7009a8e3ac077685",
				"e20fecd59312b63b37eee27714465aae1caa1c87840abd0d685ea88b3d598fdf",
				"00aa705de68066e9534a238af35ea77c48016462a8aff358d22eaa6c7d5b034354"},
		},
	},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test data %q: %v", s, err)
	}
	return b
}

// slip10Public is SLIP-0010's serialized public key: 0x00 followed by the
// ed25519 or X25519 public key.
func slip10Public(t *testing.T, curve string, priv [32]byte) string {
	t.Helper()
	var pub []byte
	switch curve {
	case "ed25519":
		pub = ed25519.NewKeyFromSeed(priv[:]).Public().(ed25519.PublicKey)
	case "curve25519":
		k, err := ecdh.X25519().NewPrivateKey(priv[:])
		if err != nil {
			t.Fatal(err)
		}
		pub = k.PublicKey().Bytes()
	}
	return "00" + hex.EncodeToString(pub)
}

func TestSLIP10Vectors(t *testing.T) {
	for _, v := range slip10Vectors {
		t.Run(v.name, func(t *testing.T) {
			derive := DeriveEd25519
			if v.curve == "curve25519" {
				derive = DeriveCurve25519
			}
			seed := mustHex(t, v.seed)
			for _, n := range v.nodes {
				path, err := ParsePath(n.path)
				if err != nil {
					t.Fatalf("ParsePath(%q): %v", n.path, err)
				}
				priv, chain, err := derive(seed, path...)
				if err != nil {
					t.Fatalf("%s: %v", n.path, err)
				}
				if got := hex.EncodeToString(chain[:]); got != n.chainCode {
					t.Errorf("%s: chain code %s, want %s", n.path, got, n.chainCode)
				}
				if got := hex.EncodeToString(priv[:]); got != n.private {
					t.Errorf("%s: private key %s, want %s", n.path, got, n.private)
				}
				if got := slip10Public(t, v.curve, priv); got != n.public {
					t.Errorf("%s: public key %s, want %s", n.path, got, n.public)
				}
			}
		})
	}
}

// TestSLIP10DesignCheckpoints checks the two values DESIGN §10 quotes, which
// were measured independently of this package.
func TestSLIP10DesignCheckpoints(t *testing.T) {
	seed := mustHex(t, slip10Seed1)
	priv, _, err := DeriveEd25519(seed, 0+Hardened)
	if err != nil {
		t.Fatal(err)
	}
	pub := hex.EncodeToString(ed25519.NewKeyFromSeed(priv[:]).Public().(ed25519.PublicKey))
	if !strings.HasPrefix(pub, "8c8a13df") || !strings.HasSuffix(pub, "5d350c") {
		t.Errorf("ed25519 m/0H public key %s, want 8c8a13df…5d350c", pub)
	}
	priv, _, err = DeriveCurve25519(seed)
	if err != nil {
		t.Fatal(err)
	}
	if pub := slip10Public(t, "curve25519", priv)[2:]; !strings.HasPrefix(pub, "5c7289dc") || !strings.HasSuffix(pub, "c80577") {
		t.Errorf("curve25519 master public key %s, want 5c7289dc…c80577", pub)
	}
}

func TestDeriveRefusesNormalIndexes(t *testing.T) {
	seed := mustHex(t, slip10Seed1)
	for _, derive := range []func([]byte, ...uint32) ([32]byte, [32]byte, error){DeriveEd25519, DeriveCurve25519} {
		if _, _, err := derive(seed, Hardened, 1); !errors.Is(err, ErrNotHardened) {
			t.Errorf("path m/0'/1: error %v, want ErrNotHardened", err)
		}
	}
}

func TestDeriveRefusesBadSeedLengths(t *testing.T) {
	for _, n := range []int{0, 15, 65} {
		if _, _, err := DeriveEd25519(make([]byte, n), Hardened); err == nil {
			t.Errorf("a %d-byte seed was accepted; SLIP-0010 takes 16 to 64", n)
		}
	}
}

func TestPurposeSpellsKith(t *testing.T) {
	if got := binary.BigEndian.Uint32([]byte("kith")); got != Purpose {
		t.Errorf("Purpose = %d, but \"kith\" is %d", Purpose, got)
	}
}

func TestParsePath(t *testing.T) {
	good := []struct {
		in   string
		want []uint32
	}{
		{"m", []uint32{}},
		{"m/0", []uint32{0}},
		{"m/1802073192'/1'/0'", []uint32{Purpose + Hardened, 1 + Hardened, Hardened}},
		{"m/1H/2h/3'", []uint32{1 + Hardened, 2 + Hardened, 3 + Hardened}},
		{"m/2147483647'", []uint32{^uint32(0)}},
	}
	for _, g := range good {
		got, err := ParsePath(g.in)
		if err != nil || !slices.Equal(got, g.want) {
			t.Errorf("ParsePath(%q) = %v, %v; want %v", g.in, got, err, g.want)
		}
		if err == nil && !strings.ContainsAny(g.in, "Hh") {
			if back := FormatPath(got); back != g.in {
				t.Errorf("FormatPath(ParsePath(%q)) = %q", g.in, back)
			}
		}
	}
	bad := []string{"", "M/0", "m/", "m//1", "m/-1", "m/+1", "m/1''", "m/2147483648", "m/2147483648'", "m/x", "n/0", "m/0/", " m/0", "m/0x10"}
	for _, b := range bad {
		if p, err := ParsePath(b); err == nil {
			t.Errorf("ParsePath(%q) = %v, want an error", b, p)
		}
	}
}
