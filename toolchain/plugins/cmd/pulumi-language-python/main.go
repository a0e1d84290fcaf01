// pulumi-language-python, PROTOCOL ADAPTER in front of the real Python language host.
//
// The Go module proxy refuses the current host's module, so the toolchain builds the newest host
// that is served (the one inside github.com/pulumi/pulumi/sdk/v3 v3.68.0, installed beside this
// binary as pulumi-language-python-host). Every call is forwarded to that real host; this adapter
// only restates what newer CLIs send in ProgramInfo in the fields and flags the older host reads:
//   - ProgramInfo.options.virtualenv (and the root directory it is relative to) becomes the host's
//     -virtualenv/-root start-up flags, one host process per virtual environment, so the program
//     and a policy pack each run in their own environment as with a current host;
//   - RunPluginRequest.program, which newer CLIs leave empty, is set from ProgramInfo.
//
// Calls the old host does not know return Unimplemented, which the CLI handles as for any old host.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

const hostBinary = "pulumi-language-python-host"

type adapter struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	args  []string // what the CLI passed us (the engine address), passed on to each host
	mu    sync.Mutex
	hosts map[string]pulumirpc.LanguageRuntimeClient
	procs []*exec.Cmd
}

// hostFor returns the real host for a program's virtual environment, starting it on first use.
func (a *adapter) hostFor(info *pulumirpc.ProgramInfo) (pulumirpc.LanguageRuntimeClient, error) {
	var flags []string
	if info != nil {
		if venv, ok := info.GetOptions().GetFields()["virtualenv"]; ok && venv.GetStringValue() != "" {
			flags = append(flags, "-root="+info.GetRootDirectory(), "-virtualenv="+venv.GetStringValue())
		}
	}
	key := strings.Join(flags, "\x00")
	a.mu.Lock()
	defer a.mu.Unlock()
	if client, ok := a.hosts[key]; ok {
		return client, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(self), hostBinary), append(flags, a.args...)...)
	cmd.Stderr = os.Stderr
	// The host dies with us: the CLI ends plugins by killing this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", hostBinary, err)
	}
	reader := bufio.NewReader(out)
	port, err := reader.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("%s did not print its port: %w", hostBinary, err)
	}
	go func() { _, _ = io.Copy(os.Stderr, reader) }()
	conn, err := grpc.NewClient("127.0.0.1:"+strings.TrimSpace(port),
		grpc.WithTransportCredentials(insecure.NewCredentials()), rpcutil.GrpcChannelOptions())
	if err != nil {
		return nil, err
	}
	client := pulumirpc.NewLanguageRuntimeClient(conn)
	a.hosts[key] = client
	a.procs = append(a.procs, cmd)
	return client, nil
}

// infoRequest is every request that says which program it is about.
type infoRequest interface{ GetInfo() *pulumirpc.ProgramInfo }

// forward sends a unary call to the host for the request's program.
func forward[Req infoRequest, Resp any](a *adapter, ctx context.Context, req Req,
	call func(pulumirpc.LanguageRuntimeClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	host, err := a.hostFor(req.GetInfo())
	if err != nil {
		var zero Resp
		return zero, err
	}
	return call(host, ctx, req)
}

// forwardStream relays a server-streaming call from the host for the request's program.
func forwardStream[Req infoRequest, Msg any](a *adapter, req Req, out grpc.ServerStreamingServer[Msg],
	call func(pulumirpc.LanguageRuntimeClient, context.Context, Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Msg], error),
) error {
	host, err := a.hostFor(req.GetInfo())
	if err != nil {
		return err
	}
	stream, err := call(host, out.Context(), req)
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := out.Send(msg); err != nil {
			return err
		}
	}
}

func (a *adapter) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return forward(a, ctx, req, pulumirpc.LanguageRuntimeClient.GetRequiredPlugins)
}

func (a *adapter) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	return forward(a, ctx, req, pulumirpc.LanguageRuntimeClient.Run)
}

func (a *adapter) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	return forward(a, ctx, req, pulumirpc.LanguageRuntimeClient.About)
}

func (a *adapter) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return forward(a, ctx, req, pulumirpc.LanguageRuntimeClient.GetProgramDependencies)
}

func (a *adapter) GetPluginInfo(ctx context.Context, req *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	host, err := a.hostFor(nil)
	if err != nil {
		return nil, err
	}
	return host.GetPluginInfo(ctx, req)
}

func (a *adapter) InstallDependencies(req *pulumirpc.InstallDependenciesRequest, out grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	return forwardStream(a, req, out, pulumirpc.LanguageRuntimeClient.InstallDependencies)
}

func (a *adapter) RunPlugin(req *pulumirpc.RunPluginRequest, out grpc.ServerStreamingServer[pulumirpc.RunPluginResponse]) error {
	if req.GetProgram() == "" && req.GetInfo() != nil {
		req.Program = filepath.Join(req.GetInfo().GetProgramDirectory(), req.GetInfo().GetEntryPoint())
	}
	return forwardStream(a, req, out, pulumirpc.LanguageRuntimeClient.RunPlugin)
}

func main() {
	a := &adapter{args: os.Args[1:], hosts: map[string]pulumirpc.LanguageRuntimeClient{}}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, a)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "language host adapter: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port)
	err = <-handle.Done
	a.mu.Lock()
	for _, cmd := range a.procs {
		_ = cmd.Process.Kill()
	}
	a.mu.Unlock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "language host adapter: %v\n", err)
		os.Exit(1)
	}
}
