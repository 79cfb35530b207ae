package hclx

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// EvalContext is the only context config expressions are evaluated in: no
// variables, one function, env("NAME").
func EvalContext(getenv func(string) (string, bool)) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{"env": envFunc(getenv)},
	}
}

// envFunc returns env("NAME"): the value of environment variable NAME, or
// "" when it is unset (optional secrets such as API keys commonly are).
// NAME must be a non-empty string; other argument types are rejected rather
// than converted so that env(FOO) mistakes are caught.
func envFunc(getenv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or an empty string when it is unset.",
		Params: []function.Parameter{{
			Name: "name",
			Type: cty.DynamicPseudoType,
		}},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			arg := args[0]
			if arg.Type() != cty.String {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "want a string such as \"API_KEY\", got %s", arg.Type().FriendlyName())
			}
			name := arg.AsString()
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "%s is not a valid environment variable name", Quote(name))
			}
			v, _ := getenv(name)
			return cty.StringVal(v), nil
		},
	})
}
