// Package archive seals a user's history so that losing any one device loses
// nothing and stealing any one device reveals nothing (DESIGN §8).
//
// History is packed, cut into chunks, compressed, and each chunk sealed
// twice with age: the inner layer to one access device's archive key, the
// outer layer to another's (or, with a single device, to the user's
// recovery key from the seed phrase). Each layer is a standard age file, so
// the stock age tool opens a blob with keys from `kith keys export`:
//
//	age -d -i B.key BLOB | age -d -i A.key > part
//
// A sealed blob is named by the SHA-256 of its bytes. A sealed index lists
// the archives, with the roster and friend list, signed by a device.
//
// The package is pure: it touches no disk and no network. Package
// archive/disk keeps blobs in a folder. The agent moves blobs between
// devices, records placement in the cluster state, and runs repair; see
// "The seam" below.
//
// # Keys, and who opens what
//
// An archive is sealed to Recipients{Inner, Outer}, two different
// seed.ArchiveRecipient values. Opening takes both private keys:
//
//   - PeelOuter(blob, outerKey) gives the inner layer (still an age file);
//   - OpenInner(inner, innerKey) gives the Part inside;
//   - Assemble(parts) gives the Records back.
//
// Two devices cooperate: the one holding the outer key peels and hands the
// inner layer over the authenticated channel, the other opens it. Open does
// all three with both keys; OpenWith with any set of keys that includes
// both, the seed-phrase path after losing every device
// (seed.DeriveDevice for each device index the user had, and
// seed.DeriveRecoveryArchive). One key alone opens nothing: the wrong key
// for a layer fails with ErrWrongKey.
//
// Nothing is returned from a layer before it has been read to a clean end:
// age's stream hands out plaintext before it can tell a truncated file, so
// the package reads the whole layer into memory first (at most
// MaxBlobSize) and fails with ErrCorrupt unless the stream ends cleanly.
//
// # Pack format (version 1)
//
// The records, concatenated; all integers big-endian:
//
//	offset  size  field
//	0       8     magic "kithpack"
//	8       1     version, 1
//	9       4     record count n, at most MaxRecords
//	then n records:
//	        2     conversation ID length L, 1 to MaxIDLen
//	        L     conversation ID: UTF-8, no control characters, unique
//	        8     data length D
//	        D     data, opaque
//
// The pack ends exactly after the last record.
//
// # Part format (version 1): the plaintext inside the inner layer
//
// The pack is cut into chunks of Options.ChunkSize bytes (DefaultChunkSize,
// 4 MiB), and each chunk becomes one part:
//
//	offset  size  field
//	0       8     magic "kithblob"
//	8       1     version, 1
//	9       1     method: 0 stored, 1 DEFLATE (RFC 1951)
//	10      16    archive ID, random, the same in every part of an archive
//	26      4     part index i, 0 to count-1
//	30      4     part count, 1 to MaxParts
//	34      4     raw length: the chunk's length, at most MaxChunkSize
//	38      …     payload: the chunk (stored) or its DEFLATE stream
//
// A chunk that does not shrink is stored. A DEFLATE payload must inflate to
// exactly the raw length and end there. The archive ID and index bind each
// part to its place: a part of another archive, a part missing or repeated
// fails with ErrWrongArchive.
//
// # Blob
//
// A blob is age(Outer, age(Inner, part)): the outer layer is a standard age
// file whose plaintext is the inner layer, itself a standard age file whose
// plaintext is the part. Its name is SHA-256(blob).
//
// # Index format (version 1)
//
// The signed index is the plaintext of a doubly sealed blob, like a part:
//
//	offset  size  field
//	0       8     magic "kithindx"
//	8       1     version, 1
//	9       8     generation, at least 1, raised by each new index
//	17      8     created, Unix seconds
//	25      4+R   roster: length R (at most MaxOpaque), then R opaque bytes
//	        4+F   friend list: the same
//	        4     archive count A, at most MaxArchives
//	then A archives:
//	        16    archive ID
//	        4     conversation count C, then C times: 2-byte length, ID
//	        4     blob count N, 1 to MaxParts, then N times, part order:
//	              32 name, 8 sealed size, 32 inner recipient, 32 outer recipient
//	then:
//	        32    signer: the device public key (ed25519)
//	        64    ed25519 signature of "kith/v1/archive-index\x00" ‖ every
//	              byte above, the signer included
//
// VerifyIndex refuses an index not signed by one of Trust.Devices
// (ErrForged) or whose generation is not above Trust.Known (ErrReplayed).
//
// # Merkle root and diff
//
// MerkleRoot of a set of names: the names sorted by bytes, duplicates
// dropped; leaves SHA-256(0x00 ‖ name); each node SHA-256(0x01 ‖ left ‖
// right), an odd last node carried up unchanged; the empty set's root
// SHA-256(0x02). Two holders with equal roots hold the same blobs. If they
// differ, they exchange BucketRoots (2^bits roots of the names sharing
// their first bits bits; AppendRoots/ParseRoots), then the names in the
// buckets that differ (NamesInBuckets, AppendNames/ParseNames), and Diff
// gives what each lacks. Wire forms: names are a 4-byte count then 32-byte
// names strictly ascending; roots a byte bits then 2^bits 32-byte roots.
//
// # Placement and repair
//
// PlanRepair is a pure function from blobs with their holders, the devices
// (own or friends' relays, online or not, with room left) and the lost or
// revoked devices, to the copies that give every blob DefaultMinReplicas
// live holders: own devices first, then the least loaded.
//
// # The seam: what the agent wires
//
//   - Sealing: the conversation engine serializes each decided (or idle)
//     conversation into Record{Conversation, Data}; the agent calls Seal
//     with Recipients{Inner: this device's cert Archive recipient, Outer:
//     another access device's, or the recovery recipient with one device}
//     (the user's recovery recipient must then be in the cluster state:
//     it is public), Puts every Blob in its disk.Store (owner = the user),
//     adds s.Entry() to the index, raises the generation, SealIndex with
//     its device key, and stores the index blob the same way. Only then
//     destroy the at-rest copy of the conversation.
//   - Placement in the Raft state: a command per blob holding {name, size,
//     holder device}, and one for the current index {name, generation}.
//     PlanInput is built from that state, presence (Online) and each
//     relay's quota; the leader runs PlanRepair when a device is revoked or
//     gone past the threshold, and at each placement change, and sends
//     each Copy to its From device.
//   - Stream protocol 0x08, blob transfer, over the authenticated QUIC
//     channel: GET name → bytes (the receiver checks CheckBlob and Puts);
//     PUT owner, name, bytes (the relay's disk.Store enforces the quota and
//     the hash; a *disk.QuotaError goes back as a clear refusal); ROOT →
//     MerkleRoot(store.Names()); BUCKETS bits → AppendRoots; NAMES buckets
//     → AppendNames; PEEL name → the inner layer, sent only to the user's
//     own devices (the peer's TLS key must be an own device in the
//     roster), and only for blobs whose outer recipient is this device's.
//     Bound each message by MaxBlobSize (MaxSealedIndexSize for an index).
//   - Reading (kith conv show): find the entry with Index.Conversation,
//     fetch each blob from any holder, PeelOuter it locally when this
//     device is the outer recipient, else ask the outer recipient to PEEL;
//     OpenInner, Assemble.
//   - Recovery: a device restored from the phrase derives its archive key
//     (and, for a full loss, seed.DeriveRecoveryArchive and the other
//     devices' keys); it trusts index signers by seed.DeriveDevice for the
//     device indexes it knows, or those in its roster; the roster and
//     friend list come back from Index.Roster and Index.Friends.
package archive
