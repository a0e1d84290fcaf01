// Package echo is the shared core of the two provider plugins this project builds itself because
// the Go module proxy refuses the real ones (README "Toolchain"): a provider whose state is its
// inputs plus the fields a per-type hook computes, speaking the real provider gRPC protocol to the
// real engine. Every call can be appended to a JSON-lines file so tests can see what the engine sent.
package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Computed returns the fields the provider adds to a new resource's state, from its type token,
// name (the URN's last part) and inputs. It must be deterministic for the same inputs unless the
// real provider's isn't (random values).
type Computed func(typ, name string, inputs map[string]*structpb.Value) map[string]*structpb.Value

// Provider is a ResourceProviderServer for one package.
type Provider struct {
	pulumirpc.UnimplementedResourceProviderServer

	Package string
	Version string
	Compute Computed
	// ReplaceOnChange: any input change replaces the resource (pulumi-random's behaviour).
	ReplaceOnChange bool

	mu     sync.Mutex
	record *os.File
	nextID int
	// reject: Create and Update fail for inputs that contain this text, as a cloud API refuses a
	// value that passed every check before it (how tests make a real `pulumi up` fail).
	reject string
}

// New opens the record file named by recordEnv, if that variable is set, and reads the text to
// reject from rejectEnv (unset: reject nothing).
func New(pkg, version, recordEnv, rejectEnv string, compute Computed, replaceOnChange bool) (*Provider, error) {
	p := &Provider{Package: pkg, Version: version, Compute: compute, ReplaceOnChange: replaceOnChange}
	if rejectEnv != "" {
		p.reject = os.Getenv(rejectEnv)
	}
	if path := os.Getenv(recordEnv); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", recordEnv, err)
		}
		p.record = f
	}
	return p, nil
}

func (p *Provider) log(method, urn string, fields map[string]*structpb.Value) {
	if p.record == nil {
		return
	}
	entry := map[string]any{"method": method, "urn": urn}
	if fields != nil {
		entry["properties"] = (&structpb.Struct{Fields: fields}).AsMap()
	}
	line, err := json.Marshal(entry)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.record.Write(append(line, '\n'))
}

func fieldsOf(s *structpb.Struct) map[string]*structpb.Value {
	if s == nil {
		return map[string]*structpb.Value{}
	}
	return s.Fields
}

// urnParts splits "urn:pulumi:stack::project::qualified$type::name" into type and name.
func urnParts(urn string) (typ, name string) {
	parts := splitN(urn, "::", 4)
	if len(parts) != 4 {
		return "", urn
	}
	qualified := parts[2]
	for i := len(qualified) - 1; i >= 0; i-- {
		if qualified[i] == '$' {
			qualified = qualified[i+1:]
			break
		}
	}
	return qualified, parts[3]
}

func splitN(s, sep string, n int) []string {
	var out []string
	for len(out) < n-1 {
		i := indexOf(s, sep)
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = s[i+len(sep):]
	}
	return append(out, s)
}

func indexOf(s, sep string) int {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return i
		}
	}
	return -1
}

func (p *Provider) state(urn string, inputs map[string]*structpb.Value) *structpb.Struct {
	typ, name := urnParts(urn)
	out := map[string]*structpb.Value{}
	for k, v := range p.Compute(typ, name, inputs) {
		out[k] = v
	}
	for k, v := range inputs { // inputs win, as a provider echoes what it was given
		out[k] = v
	}
	return &structpb.Struct{Fields: out}
}

func (p *Provider) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true, AcceptOutputs: true}, nil
}

func (p *Provider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: p.Version}, nil
}

func (p *Provider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	schema, _ := json.Marshal(map[string]any{"name": p.Package, "version": p.Version})
	return &pulumirpc.GetSchemaResponse{Schema: string(schema)}, nil
}

func (p *Provider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *Provider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *Provider) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	p.log("Configure", "", fieldsOf(req.GetArgs()))
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true, AcceptOutputs: true}, nil
}

func (p *Provider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	p.log("Check", req.GetUrn(), fieldsOf(req.GetNews()))
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *Provider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, news := fieldsOf(req.GetOldInputs()), fieldsOf(req.GetNews())
	if len(olds) == 0 {
		olds = fieldsOf(req.GetOlds())
	}
	var changed []string
	for k, v := range news {
		if old, ok := olds[k]; !ok || !proto.Equal(old, v) {
			changed = append(changed, k)
		}
	}
	for k := range olds {
		if _, ok := news[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	resp := &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}
	if len(changed) > 0 {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		resp.Diffs = changed
		if p.ReplaceOnChange {
			resp.Replaces = changed
		}
	}
	return resp, nil
}

func (p *Provider) refuse(urn string, inputs *structpb.Struct, preview bool) error {
	if p.reject == "" || preview {
		return nil
	}
	text, err := json.Marshal(inputs.AsMap())
	if err != nil || !strings.Contains(string(text), p.reject) {
		return nil
	}
	return fmt.Errorf("googleapi: Error 400: invalid value in %s (refused by the recording double: inputs contain %q)", urn, p.reject)
}

func (p *Provider) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	p.log("Create", req.GetUrn(), fieldsOf(req.GetProperties()))
	if err := p.refuse(req.GetUrn(), req.GetProperties(), req.GetPreview()); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.nextID++
	id := fmt.Sprintf("%s-%d", p.Package, p.nextID)
	p.mu.Unlock()
	if req.GetPreview() {
		id = ""
	}
	_, name := urnParts(req.GetUrn())
	if id != "" {
		id = name + "-" + id
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: p.state(req.GetUrn(), fieldsOf(req.GetProperties()))}, nil
}

func (p *Provider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (p *Provider) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	p.log("Update", req.GetUrn(), fieldsOf(req.GetNews()))
	if err := p.refuse(req.GetUrn(), req.GetNews(), req.GetPreview()); err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: p.state(req.GetUrn(), fieldsOf(req.GetNews()))}, nil
}

func (p *Provider) Delete(_ context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	p.log("Delete", req.GetUrn(), nil)
	return &emptypb.Empty{}, nil
}

func (p *Provider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Serve runs a provider made by New as the plugin process the engine starts, and exits 1 on error.
func Serve(pkg, version, recordEnv, rejectEnv string, compute Computed, replaceOnChange bool) {
	err := provider.Main(pkg, func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return New(pkg, version, recordEnv, rejectEnv, compute, replaceOnChange)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
