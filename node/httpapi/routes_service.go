package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/bourse-net/bourse/node/api"
)

// ServiceBackend is what the service routes need. A Backend that does not
// implement it answers them 503.
type ServiceBackend interface {
	// DeployService signs and sends a ServiceOpen; module is nil when the
	// spec names a payload by hash the backend holds.
	DeployService(ctx context.Context, spec api.ServiceSpec, module []byte) (api.Service, error)
	// Services lists the node's services (all: also ended ones).
	Services(ctx context.Context, all bool) ([]api.Service, error)
	// Service is one of them by name, or any service by id.
	Service(ctx context.Context, name string) (api.Service, error)
	ServiceStats(ctx context.Context, name string) (api.ServiceStats, error)
	ServiceLogs(ctx context.Context, name string) (api.ServiceLogs, error)
	ScaleService(ctx context.Context, name string, replicas uint32) (api.Service, error)
	CloseService(ctx context.Context, name string) (api.Service, error)
}

func (s *Server) serviceRoutes(short, long func(string, func(http.ResponseWriter, *http.Request) error)) {
	svc := func(f func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			b, ok := s.b.(ServiceBackend)
			if !ok {
				return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "this node does not run services"}
			}
			return f(w, r, b)
		}
	}
	long("POST /v1/services", svc(s.deployService))
	short("GET /v1/services", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		all := r.URL.Query().Get("all")
		if all != "" && all != "true" && all != "false" {
			return api.BadRequest("all=%.20q: want true or false", all)
		}
		return writeResult(w)(b.Services(r.Context(), all == "true"))
	}))
	short("GET /v1/services/{name}", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		return writeResult(w)(b.Service(r.Context(), r.PathValue("name")))
	}))
	short("GET /v1/services/{name}/stats", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		return writeResult(w)(b.ServiceStats(r.Context(), r.PathValue("name")))
	}))
	short("GET /v1/services/{name}/logs", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		return writeResult(w)(b.ServiceLogs(r.Context(), r.PathValue("name")))
	}))
	short("POST /v1/services/{name}/scale", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		var req api.ScaleRequest
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
		if req.Replicas == 0 || req.Replicas > api.MaxServiceReplicas {
			return api.BadRequest("replicas %d: want 1..%d", req.Replicas, api.MaxServiceReplicas)
		}
		return writeResult(w)(b.ScaleService(r.Context(), r.PathValue("name"), req.Replicas))
	}))
	short("POST /v1/services/{name}/close", svc(func(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
		if err := s.emptyBody(w, r); err != nil {
			return err
		}
		return writeResult(w)(b.CloseService(r.Context(), r.PathValue("name")))
	}))
}

// deployService reads the multipart body of POST /v1/services: a spec
// part (JSON or YAML) and a payload part (the module).
func (s *Server) deployService(w http.ResponseWriter, r *http.Request, b ServiceBackend) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupportedMedia,
			Message: fmt.Sprintf("content type %q: deploy a service as multipart/form-data with a %q part and a %q part", ct, PartSpec, PartPayload)}
	}
	limit := s.opts.MaxUpload + api.MaxSpecSize + 64<<10
	mr := multipart.NewReader(bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, limit), 256<<10), params["boundary"])
	var specData, module []byte
	var haveSpec, haveModule bool
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
			if specData, err = readPart(part, api.MaxSpecSize, "the service spec"); err != nil {
				return uploadErr(err, limit, "read spec part")
			}
		case PartPayload:
			if haveModule {
				return api.BadRequest("more than one %q part", PartPayload)
			}
			haveModule = true
			if module, err = readPart(part, s.opts.MaxUpload, "the module"); err != nil {
				return uploadErr(err, limit, "read payload part")
			}
		default:
			return api.BadRequest("unknown multipart part %.40q (want %q and %q)", name, PartSpec, PartPayload)
		}
	}
	if !haveSpec {
		return api.BadRequest("missing the %q part with the service spec", PartSpec)
	}
	spec, err := api.ParseServiceSpec(specData)
	if err != nil {
		return err
	}
	if !haveModule && spec.PayloadSHA256 == "" {
		return api.BadRequest("missing the %q part with the service's module", PartPayload)
	}
	return writeResult(w)(b.DeployService(r.Context(), spec, module))
}
