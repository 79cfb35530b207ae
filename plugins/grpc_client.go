package plugins

import (
	"context"
	"fmt"
	"sort"

	"github.com/healproxy/healproxy/plugins/proto"
)

// grpcClient is the host-side Model: it forwards each call, with the
// caller's context, to the plugin process and translates the errors.
type grpcClient struct {
	client proto.ModelClient
	// processCtx is done once the plugin process has exited.
	processCtx context.Context
}

// gone reports a call to a process that has already exited without touching
// the connection.
func (c *grpcClient) gone(method string) error {
	if c.processCtx != nil && c.processCtx.Err() != nil {
		return fmt.Errorf("%w: %s: plugin process has exited", ErrPluginUnavailable, method)
	}
	return nil
}

// Predict implements Model. A response with a number of predictions other
// than len(inputs) is an ErrBadResponse; each list is returned best first.
func (c *grpcClient) Predict(ctx context.Context, inputs []string) ([][]LabelScore, error) {
	if err := c.gone("Predict"); err != nil {
		return nil, err
	}
	resp, err := c.client.Predict(ctx, &proto.PredictRequest{Inputs: inputs})
	if err != nil {
		return nil, translateError(ctx, c.processCtx, "Predict", err)
	}
	preds := resp.GetPredictions()
	if len(preds) != len(inputs) {
		return nil, fmt.Errorf("%w: %d predictions for %d inputs", ErrBadResponse, len(preds), len(inputs))
	}
	out := make([][]LabelScore, len(preds))
	for i, p := range preds {
		scores := make([]LabelScore, len(p.GetScores()))
		for j, s := range p.GetScores() {
			scores[j] = LabelScore{Label: s.GetLabel(), Score: s.GetScore()}
		}
		// The contract says best first; do not trust a third-party plugin.
		sort.SliceStable(scores, func(a, b int) bool { return scores[a].Score > scores[b].Score })
		out[i] = scores
	}
	return out, nil
}

// Info implements Model.
func (c *grpcClient) Info(ctx context.Context) (Info, error) {
	if err := c.gone("Info"); err != nil {
		return Info{}, err
	}
	resp, err := c.client.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return Info{}, translateError(ctx, c.processCtx, "Info", err)
	}
	return Info{Name: resp.GetName(), Version: resp.GetVersion(), Labels: resp.GetLabels()}, nil
}

// Health implements Model. A plugin answering "not ok" yields ErrUnhealthy
// with its message.
func (c *grpcClient) Health(ctx context.Context) error {
	if err := c.gone("Health"); err != nil {
		return err
	}
	resp, err := c.client.Health(ctx, &proto.HealthRequest{})
	if err != nil {
		return translateError(ctx, c.processCtx, "Health", err)
	}
	if !resp.GetOk() {
		return fmt.Errorf("%w: %s", ErrUnhealthy, resp.GetMessage())
	}
	return nil
}

// Interface guards.
var _ Model = (*grpcClient)(nil)
