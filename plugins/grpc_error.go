package plugins

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// translateError is the one place where gRPC errors from a plugin call become
// errors the host branches on with errors.Is (after Terraform's
// internal/plugin/grpc_error.go):
//
//   - the plugin process has exited, codes.Unavailable (the process died
//     mid-call or its connection is broken), or codes.Canceled while the
//     caller's context is still live (the connection was closed by Kill)
//     → ErrPluginUnavailable;
//   - codes.DeadlineExceeded, or any failure once the caller's deadline has
//     passed → context.DeadlineExceeded;
//   - codes.Canceled after the caller cancelled → context.Canceled;
//   - codes.InvalidArgument (the model refused the inputs) → ErrBadInput;
//   - anything else → an error with the plugin's own message and the code.
//
// processCtx is go-plugin's per-process context (done once the process has
// exited); it may be nil.
func translateError(callCtx, processCtx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	st, isStatus := status.FromError(err)
	msg := st.Message()
	switch {
	case processCtx != nil && processCtx.Err() != nil:
		return fmt.Errorf("%w: %s: plugin process has exited (%s)", ErrPluginUnavailable, method, msg)
	case isStatus && st.Code() == codes.Unavailable:
		return fmt.Errorf("%w: %s: %s", ErrPluginUnavailable, method, msg)
	case isStatus && st.Code() == codes.DeadlineExceeded,
		errors.Is(callCtx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("model plugin %s timed out: %w", method, context.DeadlineExceeded)
	case errors.Is(callCtx.Err(), context.Canceled):
		return fmt.Errorf("model plugin %s: %w", method, context.Canceled)
	case isStatus && st.Code() == codes.Canceled:
		// The caller did not cancel, so the connection itself went away
		// ("grpc: the client connection is closing").
		return fmt.Errorf("%w: %s: %s", ErrPluginUnavailable, method, msg)
	case isStatus && st.Code() == codes.InvalidArgument:
		return fmt.Errorf("%w: %s (%s): %s", ErrBadInput, method, st.Code(), msg)
	case !isStatus:
		return fmt.Errorf("model plugin %s: %w", method, err)
	default:
		return fmt.Errorf("model plugin %s failed (%s): %s", method, st.Code(), msg)
	}
}

// statusFromError is the plugin-side counterpart of translateError: it turns
// an error returned by a Model into a gRPC status, so that a model giving up
// on its context reaches the host as DeadlineExceeded / Canceled rather than
// as an opaque Unknown.
func statusFromError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, ErrPluginUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrBadInput):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}
