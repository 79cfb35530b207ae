// Package plugins runs model backends as hashicorp/go-plugin gRPC
// subprocesses.
//
// The pieces follow go-plugin's examples/grpc layout:
//
//   - interface.go: the Model interface every backend implements, the
//     Handshake both sides must agree on, PluginMap, and the error sentinels
//     callers branch on with errors.Is;
//   - grpc_client.go / grpc_server.go: adapters between Model and the
//     generated gRPC code in plugins/proto (contexts pass straight through);
//   - builtin.go: the built-in models this binary serves as
//     `healproxy plugin NAME`, and Serve, the one call a third-party plugin's
//     main makes;
//   - process.go: one running plugin subprocess (spawn, handshake, health
//     check, exit watch, kill).
//
// The host side never sees gRPC errors: the client adapter translates them
// (see translateError) into ErrPluginUnavailable (the process is gone or not
// answering on its connection), context.DeadlineExceeded / context.Canceled
// (the caller's deadline or cancellation), ErrUnhealthy, ErrBadResponse, or a
// plain error carrying the plugin's own message.
package plugins

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/healproxy/healproxy/plugins/proto"
)

// PluginName is the name under which the model plugin is registered in
// PluginMap and dispensed by the host.
const PluginName = "model"

// Handshake is the go-plugin handshake shared by healproxy and every model
// plugin. A binary started without the cookie in its environment refuses to
// run as a plugin; bump ProtocolVersion on an incompatible change of
// model.proto.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "HEALPROXY_MODEL_PLUGIN",
	MagicCookieValue: "4f1c2b7e-healproxy-model-v1",
}

// PluginMap is the plugin set the host dispenses from. It carries no
// implementation: the host only uses the client half.
var PluginMap = plugin.PluginSet{
	PluginName: &ModelPlugin{},
}

// LabelScore is one label with its score.
type LabelScore struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

// Info describes a model.
type Info struct {
	Name, Version string
	Labels        []string
}

// Model is what every model backend implements, in process or behind a
// plugin subprocess. Every method takes a context: implementations should
// give up when it is done, and the client adapter enforces its deadline on
// the wire whatever the plugin does.
type Model interface {
	// Predict returns one list of label scores per input, in input order,
	// each list sorted best first.
	Predict(ctx context.Context, inputs []string) ([][]LabelScore, error)
	// Info describes the model.
	Info(ctx context.Context) (Info, error)
	// Health returns nil when the model can serve predictions.
	Health(ctx context.Context) error
}

var (
	// ErrPluginUnavailable means the plugin process is gone or its
	// connection is broken (gRPC codes.Unavailable): the call did not reach
	// a live model. Restarting the process is the cure.
	ErrPluginUnavailable = errors.New("model plugin unavailable")

	// ErrUnhealthy means the plugin answered its health check with "not ok".
	ErrUnhealthy = errors.New("model plugin unhealthy")

	// ErrBadResponse means the plugin answered with something that breaks
	// the Model contract, such as a wrong number of predictions.
	ErrBadResponse = errors.New("model plugin returned a malformed response")

	// ErrBadInput means the model refused the inputs (gRPC
	// codes.InvalidArgument; a Python plugin raising BadInput): the
	// caller's fault, not the model's, so it is not a failure of the model.
	// A Go plugin returns an error wrapping it to the same effect.
	ErrBadInput = errors.New("model plugin refused the inputs")
)

// ModelPlugin is the go-plugin glue for Model, gRPC only. On the plugin side
// Impl is served; on the host side Impl is unused and GRPCClient returns a
// Model that talks to the subprocess.
type ModelPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Impl is the model served by GRPCServer. Unused by the host.
	Impl Model
}

// GRPCServer registers Impl on the plugin's gRPC server.
func (p *ModelPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("plugins: ModelPlugin.Impl is nil")
	}
	proto.RegisterModelServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the host-side Model. ctx is go-plugin's per-process
// context: it is cancelled once the plugin process has exited.
func (p *ModelPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &grpcClient{client: proto.NewModelClient(c), processCtx: ctx}, nil
}

// Interface guards.
var (
	_ plugin.GRPCPlugin = (*ModelPlugin)(nil)
	_ plugin.Plugin     = (*ModelPlugin)(nil)
)
