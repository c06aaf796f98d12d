package web

import (
	"slices"
	"testing"
)

// A stream that does not read keeps one entry per topic however many
// changes arrive, and loses none of the topics; streams are bounded.
func TestHubCoalescesAndBounds(t *testing.T) {
	h := newHub()
	s, ok := h.subscribe()
	if !ok {
		t.Fatal("the first stream was refused")
	}
	for i := 0; i < 10000; i++ {
		h.notify(TopicPeers)
		h.notify(TopicConv)
	}
	got := s.take()
	if !slices.Equal(got, []string{TopicPeers, TopicConv}) {
		t.Fatalf("pending %v, want peers and conv once each", got)
	}
	if len(s.wake) != 1 {
		t.Fatalf("the stream's wake holds %d, want 1", len(s.wake))
	}
	if got := s.take(); len(got) != 0 {
		t.Fatalf("taken twice: %v", got)
	}
	for i := 1; i < maxStreams; i++ {
		if _, ok := h.subscribe(); !ok {
			t.Fatalf("stream %d refused", i+1)
		}
	}
	if _, ok := h.subscribe(); ok {
		t.Fatalf("stream %d accepted, beyond maxStreams", maxStreams+1)
	}
	h.unsubscribe(s)
	if _, ok := h.subscribe(); !ok {
		t.Fatal("a stream refused after one closed")
	}
}
