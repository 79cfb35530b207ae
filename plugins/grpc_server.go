package plugins

import (
	"context"

	"github.com/healproxy/healproxy/plugins/proto"
)

// grpcServer is the plugin-side adapter: it serves a Model over gRPC,
// passing each request's context through.
type grpcServer struct {
	proto.UnimplementedModelServer
	impl Model
}

// Predict implements proto.ModelServer.
func (s *grpcServer) Predict(ctx context.Context, req *proto.PredictRequest) (*proto.PredictResponse, error) {
	preds, err := s.impl.Predict(ctx, req.GetInputs())
	if err != nil {
		return nil, statusFromError(err)
	}
	resp := &proto.PredictResponse{Predictions: make([]*proto.Prediction, len(preds))}
	for i, scores := range preds {
		p := &proto.Prediction{Scores: make([]*proto.LabelScore, len(scores))}
		for j, s := range scores {
			p.Scores[j] = &proto.LabelScore{Label: s.Label, Score: s.Score}
		}
		resp.Predictions[i] = p
	}
	return resp, nil
}

// Info implements proto.ModelServer.
func (s *grpcServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, statusFromError(err)
	}
	return &proto.InfoResponse{Name: info.Name, Version: info.Version, Labels: info.Labels}, nil
}

// Health implements proto.ModelServer. A model error is an answer ("not
// ok"), not an RPC failure; only the call's own context ending is.
func (s *grpcServer) Health(ctx context.Context, _ *proto.HealthRequest) (*proto.HealthResponse, error) {
	if err := s.impl.Health(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, statusFromError(ctx.Err())
		}
		return &proto.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &proto.HealthResponse{Ok: true}, nil
}

// Interface guards.
var _ proto.ModelServer = (*grpcServer)(nil)
