package cluster

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// pending is the durable queue of writes not yet committed by the cluster,
// a bbolt file of its own: bucket "pending", keyed by a big-endian
// sequence number, each value one Command's JSON.
type pending struct {
	db *bbolt.DB
}

var bucketPending = []byte("pending")

func openPending(path string) (*pending, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cluster: opening the pending writes: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketPending)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cluster: opening the pending writes: %w", err)
	}
	return &pending{db: db}, nil
}

func (p *pending) close() { p.db.Close() }

// push appends b to the queue.
func (p *pending) push(b []byte) error {
	err := p.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketPending)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return bk.Put(k[:], b)
	})
	if err != nil {
		return fmt.Errorf("cluster: queueing a write: %w", err)
	}
	return nil
}

// first returns the oldest queued write and its key, or nil.
func (p *pending) first() (key, val []byte) {
	p.db.View(func(tx *bbolt.Tx) error {
		k, v := tx.Bucket(bucketPending).Cursor().First()
		if k != nil {
			key, val = append([]byte(nil), k...), append([]byte(nil), v...)
		}
		return nil
	})
	return key, val
}

// drop removes the write at key.
func (p *pending) drop(key []byte) error {
	return p.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketPending).Delete(key) })
}

func (p *pending) count() int {
	n := 0
	p.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	})
	return n
}
