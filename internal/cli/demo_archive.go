package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// archiveStory is the story of recovering history after losing a device:
// alice's laptop archives the decided debate (sealed twice, kept on two
// devices, gone from the laptop's store), her phone is destroyed, restored
// from the phrase in a new home, and reads the debate back from the
// surviving copies.
func (d *demo) archiveStory(ctx context.Context, alice demoID) error {
	d.story("Recovering history after losing a device")
	var list []control.ConvSummary
	if err := d.kith("alice-laptop", "", &list, "conv", "list"); err != nil {
		return err
	}
	var id, topic string
	for _, c := range list {
		if c.Status == "decided" {
			id, topic = c.ConversationID, c.Topic
		}
	}
	if id == "" {
		return errors.New("no decided conversation to archive")
	}
	var before control.ConvView
	if err := d.kith("alice-laptop", "", &before, "conv", "show", id); err != nil {
		return err
	}
	var now control.ArchiveNowResult
	if err := d.kith("alice-laptop", "", &now, "archive", "now"); err != nil {
		return err
	}
	d.say("alice archives the decided debate: `kith archive now` seals it twice with age, the inner layer to her laptop's")
	d.say("archive key and the outer one to her phone's, and keeps the blobs on two devices (%d archived).", len(now.Archived))
	var st control.ArchiveStatus
	if err := d.waitArchive(ctx, "alice-laptop", &st); err != nil {
		return err
	}
	d.say("`kith archive status`: %d blobs, %d bytes, each on at least %d devices, %d under-replicated.", st.Blobs, st.Bytes, st.MinReplicas, st.UnderReplicated)
	found, err := grepDir(d.home("alice-laptop"), []byte(topic))
	if err != nil {
		return err
	}
	if found != "" {
		return fmt.Errorf("the archived topic is still in %s", found)
	}
	d.say("The laptop's store forgot the debate and was compacted: no file of its home holds the topic any more.")
	for _, p := range d.agents {
		if p.Home() == d.home("alice-phone") {
			p.Kill()
		}
	}
	if err := os.RemoveAll(d.home("alice-phone")); err != nil {
		return err
	}
	d.say("alice's phone falls into the lake: its agent is gone and its home deleted.")
	var phone demoID
	if err := d.kith("alice-phone-new", alice.Mnemonic, &phone, "restore", "--device", "1", "--name", "alice-phone"); err != nil {
		return err
	}
	if _, err := d.start(ctx, "alice-phone-new", "127.0.0.6", "--heartbeat", "500ms", "--raft-profile", "lan"); err != nil {
		return err
	}
	var pShow, aShow control.ShowResult
	var s1, s2 control.ScanResult
	if err := d.kith("alice-phone-new", "", &pShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &aShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-phone-new", "", &s1, "pair", "scan", "--no-wait", "--code", aShow.Code); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &s2, "pair", "scan", "--code", pShow.Code); err != nil {
		return err
	}
	d.say("Her new phone: `kith restore --device 1` from the words, then paired with the laptop (%s).", s2.Status)
	t0 := time.Now()
	var after control.ConvView
	if err := d.waitConvView(ctx, "alice-phone-new", id, func(v control.ConvView) bool { return v.Status == "archived" }, &after); err != nil {
		return err
	}
	identical := after.Topic == before.Topic && len(after.Messages) == len(before.Messages) && after.Outcome != nil &&
		before.Outcome != nil && after.Outcome.ID == before.Outcome.ID
	for i := range after.Messages {
		identical = identical && i < len(before.Messages) && after.Messages[i] == before.Messages[i]
	}
	d.say("The phone fetches the blobs from the laptop, peels the outer layer with its re-derived key, and the laptop")
	d.say("opens the inner one over their authenticated channel: %q, %d messages, outcome %q, within %v: %s",
		clip(after.Topic, 60), len(after.Messages), clip(after.Outcome.Result, 20), time.Since(t0).Round(time.Millisecond), same(identical))
	if !identical {
		return errors.New("the archived debate came back different")
	}
	if err := d.waitArchive(ctx, "alice-laptop", &st); err != nil {
		return err
	}
	d.say("Repair copied the blobs to the new phone again: %d under-replicated.", st.UnderReplicated)
	return nil
}

// waitArchive runs archive passes on name until no blob is
// under-replicated.
func (d *demo) waitArchive(ctx context.Context, name string, st *control.ArchiveStatus) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if err := d.kith(name, "", nil, "archive", "now"); err != nil {
			return err
		}
		if err := d.kith(name, "", st, "archive", "status"); err != nil {
			return err
		}
		if st.Blobs > 0 && st.UnderReplicated == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: blobs still under-replicated: %+v", name, *st)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// grepDir returns the first regular file under dir holding s, or "".
func grepDir(dir string, s []byte) (string, error) {
	found := ""
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || found != "" || !e.Type().IsRegular() || strings.HasSuffix(path, ".log") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, s) {
			found = path
		}
		return nil
	})
	return found, err
}
