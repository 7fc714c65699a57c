package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/bourse-net/bourse/node/api"
)

// Parts of the POST /v1/jobs multipart body.
const (
	PartSpec    = "spec"    // the job spec as JSON (or YAML), at most api.MaxSpecSize
	PartPayload = "payload" // the payload bytes, at most Options.MaxUpload
)

// submitJob reads a multipart/form-data body with a spec part and an
// optional payload part, checks both, and hands them to the backend.
// Nothing reaches the backend unless everything is valid.
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupportedMedia,
			Message: fmt.Sprintf("content type %q: submit a job as multipart/form-data with a %q part and a %q part", ct, PartSpec, PartPayload)}
	}
	// The whole body: both parts and multipart framing.
	limit := s.opts.MaxUpload + api.MaxSpecSize + 64<<10
	body := http.MaxBytesReader(w, r.Body, limit)
	// multipart reads through a 4 KiB buffer: without a larger one below
	// it, a module upload costs a read syscall per 4 KiB.
	mr := multipart.NewReader(bufio.NewReaderSize(body, 256<<10), params["boundary"])
	var specData, payload []byte
	var haveSpec, havePayload bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploadErr(err, limit, "read multipart body")
		}
		switch name := part.FormName(); name {
		case PartSpec:
			if haveSpec {
				return api.BadRequest("more than one %q part", PartSpec)
			}
			haveSpec = true
			if specData, err = readPart(part, api.MaxSpecSize, "the job spec"); err != nil {
				return uploadErr(err, limit, "read spec part")
			}
		case PartPayload:
			if havePayload {
				return api.BadRequest("more than one %q part", PartPayload)
			}
			havePayload = true
			if payload, err = readPart(part, s.opts.MaxUpload, "the payload"); err != nil {
				return uploadErr(err, limit, "read payload part")
			}
		default:
			return api.BadRequest("unknown multipart part %.40q (want %q and %q)", name, PartSpec, PartPayload)
		}
	}
	if !haveSpec {
		return api.BadRequest("missing the %q part with the job spec", PartSpec)
	}
	spec, err := api.ParseJobSpec(specData)
	if err != nil {
		return err
	}
	// A payload named by hash (spec.payload_sha256, no payload part) is
	// one the backend must already hold; it checks it.
	if !havePayload && spec.PayloadSHA256 != "" {
		payload = nil
	} else if err := api.CheckPayload(spec.Executor, payload); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	job, err := s.b.SubmitJob(ctx, spec, payload)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, job)
}

func readPart(p *multipart.Part, limit int64, what string) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	_, err := buf.ReadFrom(io.LimitReader(p, limit+1))
	data := buf.Bytes()
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(what, limit)
	}
	return data, nil
}

func uploadErr(err error, limit int64, doing string) error {
	var mbe *http.MaxBytesError
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.As(err, &mbe):
		return tooLarge("the upload", limit)
	}
	return api.BadRequest("%s: %v", doing, err)
}
