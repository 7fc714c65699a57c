package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// retag rewrites a `docker save` tarball so that it claims the tags:
// what a hand-built bid can send.
func retag(t *testing.T, tarball []byte, tags []string) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		switch path.Clean(hdr.Name) {
		case "repositories", "index.json", "oci-layout":
			continue
		case "manifest.json":
			var m []map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			m[0]["RepoTags"] = tags
			data, _ = json.Marshal(m)
			hdr.Size = int64(len(data))
		}
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	return out.Bytes()
}

// TestImageTarballCannotMoveAnExistingTag: a job's image tarball whose
// manifest claims a tag the provider already has (the tag another
// client's jobs name) adds its own image, by ID, and leaves the tag where
// it was: later jobs naming the tag still run the provider's image.
func TestImageTarballCannotMoveAnExistingTag(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	victimTag := fmt.Sprintf("bourse-victim-test:%d", os.Getpid())
	victimID := imageID(t, e, buildImageTagged(t, e, victimTag, ""))
	attackerTag := fmt.Sprintf("bourse-attacker-test:%d", os.Getpid())
	attackerID := imageID(t, e, buildImageTagged(t, e, attackerTag, "ENV ATTACKER=1\n"))
	if attackerID == victimID {
		t.Fatal("the two images are the same")
	}
	rc, err := e.Client().ImageSave(context.Background(), []string{attackerTag})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The provider no longer has the attacker's image: the tarball brings it.
	if _, err := e.Client().ImageRemove(context.Background(), attackerTag, image.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	hostile := retag(t, saved, []string{victimTag})

	run := func(img string, payload []byte) *worker.Exit {
		j := testJob(img, "env", "ATTACKER")
		j.ID, j.Payload = workertest.NewID(), payload
		if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		x, err := e.Wait(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// Named by the victim's ID, the hostile tarball is refused.
	if x := run(victimID, hostile); x.State != worker.StateFailed || !strings.Contains(x.Reason, "not "+victimID) {
		t.Fatalf("a tarball of another image ran as %s: %s %q", victimID, x.State, x.Reason)
	}
	// Named by its own ID it runs (that is what the client asked for)...
	if x := run(attackerID, hostile); x.State != worker.StateSucceeded || string(x.Stdout) != "1\n" {
		t.Fatalf("the tarball's own image: %s %q %q", x.State, x.Reason, x.Stdout)
	}
	t.Cleanup(func() {
		_, _ = e.Client().ImageRemove(context.Background(), attackerID, image.RemoveOptions{Force: true})
	})
	// ...and the victim's tag has not moved.
	if got := imageID(t, e, victimTag); got != victimID {
		t.Fatalf("the tarball moved %s from %s to %s", victimTag, victimID, got)
	}
	if x := run(victimTag, nil); x.State != worker.StateSucceeded || string(x.Stdout) != "\n" {
		t.Fatalf("a later job naming %s: %s %q stdout %q", victimTag, x.State, x.Reason, x.Stdout)
	}
}
