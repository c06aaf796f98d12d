package archive

import "errors"

// Errors callers branch on. Every error this package returns for bad input
// wraps one of them (test with errors.Is), with the details in its message.
var (
	// ErrWrongKey means the key given is not a recipient of the layer: one
	// key alone, or the wrong device's, opens nothing.
	ErrWrongKey = errors.New("archive: this key does not open this layer")
	// ErrCorrupt means a layer failed authentication or decoding: a flipped
	// bit, a truncated blob, bytes that are not an archive.
	ErrCorrupt = errors.New("archive: damaged or not an archive")
	// ErrNameMismatch means a blob's bytes do not hash to its name: a blob
	// swapped for another, or damaged on disk or in transit.
	ErrNameMismatch = errors.New("archive: blob does not match its name")
	// ErrWrongArchive means the parts given do not make up one whole
	// archive: a part of another archive, a part missing or given twice.
	ErrWrongArchive = errors.New("archive: parts do not make up one archive")
	// ErrTooLarge means an input is past one of the package's bounds.
	ErrTooLarge = errors.New("archive: too large")
	// ErrForged means an index whose signature does not verify, or whose
	// signer is not one of the devices the caller trusts.
	ErrForged = errors.New("archive: index signature is not from a trusted device")
	// ErrReplayed means an index whose generation is not newer than the one
	// the caller already knows: an old index sent again.
	ErrReplayed = errors.New("archive: index is not newer than the one known")
)
