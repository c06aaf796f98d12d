package presence_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
	"github.com/kith-project/kith/seed"
)

// pubOf is key's public half as presence names devices.
func pubOf(key ed25519.PrivateKey) seed.DevicePublic {
	return seed.DevicePublic(key.Public().(ed25519.PublicKey))
}

func testKey(name string) ed25519.PrivateKey {
	ks := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(ks[:])
}

// beatFrom builds a fresh heartbeat from node i to node j, as node i would
// (its key, a fresh sequence number, its clock), carrying records.
func beatFrom(s *presencetest.Net, i, j int, t1 time.Time, records ...[]byte) []byte {
	n := s.Nodes[i]
	return presence.EncodeBeat(presence.TypeHeartbeat, n.Key, s.Nodes[j].Pub, n.P.NextSeq(), t1.UnixNano(), records)
}
